"""Outputs and views: what a run leaves on disk and what is made from it afterwards.

The per-frame table (schema, sink, metadata, the layout of a run folder), the annotated H.264 video, the summary
and the HTML report. Reads analysis results; never runs a model itself.
"""
