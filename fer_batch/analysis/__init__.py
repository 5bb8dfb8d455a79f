"""Analysis: from frames to faces with emotion probabilities.

The bundled models and their manifest, the face detectors (``detect/``), the tracker, face crops and the
classifier. Works on ``types.Frames`` and returns ``types.Faces``; reads media types, never writes a file.
"""
