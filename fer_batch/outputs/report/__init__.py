"""``fer-batch report RUN_DIR``: one self-contained HTML page (or an index and pages) that shows a run to a person.

``write`` reads the run folder and writes the pages; ``parts`` makes each section from the tables; ``thumbnails``
cuts face pictures from the sources; ``html`` holds the escaping, the building blocks and the CSS.
"""

from fer_batch.outputs.report.thumbnails import THUMB_PX, THUMBS_PER_TRACK, grab_frames
from fer_batch.outputs.report.write import PAGES_DIR, REPORT, write_report

__all__ = ["PAGES_DIR", "REPORT", "THUMBS_PER_TRACK", "THUMB_PX", "grab_frames", "write_report"]
