"""Analysis: from frames to faces with emotion probabilities.

The bundled models and their manifest, the face detectors (``detect/``), the tracker, face crops, the
classifier, and how far each face's answer can be trusted (``quality``: pose, sharpness, calibrated quality).
Works on ``types.Frames`` and returns ``types.Faces``; reads media types, never writes a file.
"""
