"""The names of a table's columns besides the labels: the Parquet contract every stage and reader agrees on.

Why a module of its own, at the bottom: the model-spec checks (a label must not take a column's name), the quality
stage (which fills the trust columns), the table writer and the readers all need the same names.
"""

from __future__ import annotations

# who and when: one row per face per analysed frame (a frame without a face: one row, face and box null)
ROW_COLUMNS = ("video", "frame", "time_s", "face", "track_id", "x", "y", "w", "h", "det_score")
# what every table of every fer-batch version has: a Parquet file without them is someone else's
IDENTITY_COLUMNS = ("video", "frame", "time_s", "face")
LABEL_COLUMN = "emotion"  # the top label; the probability columns (one per label) stand between det_score and it
LANDMARK_COLUMNS = (
    "eye_left_x", "eye_left_y", "eye_right_x", "eye_right_y", "nose_x", "nose_y",
    "mouth_left_x", "mouth_left_y", "mouth_right_x", "mouth_right_y",
)  # fmt: skip
POSE_COLUMNS = ("yaw", "pitch", "roll")
# how far a row can be trusted: null on rows without a face, pose and landmarks also null where the detector gives
# no landmarks (``--detector none``, Haar)
SIGNAL_COLUMNS = ("quality", *POSE_COLUMNS, *LANDMARK_COLUMNS, "sharpness")
SMOOTH_SUFFIX = "_smooth"  # ``<label>_smooth``: the label's probability smoothed along its track (``--smooth``)
# every column a table has besides the labels and their smoothed columns
TABLE_COLUMNS = (*ROW_COLUMNS, LABEL_COLUMN, *SIGNAL_COLUMNS)


def label_columns(names: list[str]) -> list[str]:
    """The probability columns among a table's column names, in order: those between ``det_score`` and ``emotion``
    that are not trust columns (read from the names where a table carries no metadata)."""
    between = names[names.index("det_score") + 1 : names.index(LABEL_COLUMN)]
    return [c for c in between if c not in SIGNAL_COLUMNS]
