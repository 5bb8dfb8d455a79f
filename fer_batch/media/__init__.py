"""Media input: what a file holds and its frames in display order, timed by their presentation times.

Probing (size, rotation, duration), image headers read before decoding, and the reader thread that decodes a video
or an image into ``types.Decoded`` frames. Knows nothing of faces. Imports only the package's base modules.
"""
