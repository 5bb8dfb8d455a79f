"""Live capture: a camera (or a file played at real time) analysed as it is recorded, into the same table.

The top of the analysis stack besides ``runs``: it reuses the analysis engine and the table and video writers.
"""
