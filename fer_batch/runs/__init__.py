"""Runs: one input end to end, and folders of inputs around it.

``one_input`` drives a video through reader, analysis and outputs; ``jobs`` plans the work of a folder and the
resume rule; ``runner`` executes it (inline, a local process pool in ``workers``, or a Dask cluster in ``cluster``),
``segments`` splits long videos into parts and joins them, ``outdir`` owns the output folder and its lock.
"""
