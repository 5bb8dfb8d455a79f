"""Make docs/report.png, the README's picture of a report, from the bundled sample.

    python docs/make_report_png.py      # needs fer-batch installed and Debian's chromium on PATH

It runs README's report command on samples/astronaut.mp4 in a temporary folder, has headless Chromium take a
screenshot of report.html, and stores it with a 256-colour palette (the page is mostly flat colours) to keep it
small.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "report.png"
SIZE = (1200, 1360)


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium is not on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "sample"
        cmd = [sys.executable, "-m", "fer_batch.cli", "analyze", "samples/astronaut.mp4", "--out", str(run),
               "--smooth", "0.3", "--annotate", "--report", "-q"]  # fmt: skip
        subprocess.run(cmd, cwd=REPO, check=True)
        shot = Path(tmp) / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={Path(tmp) / 'profile'}", f"--window-size={SIZE[0]},{SIZE[1]}",
                        "--virtual-time-budget=5000", f"--screenshot={shot}", (run / "report.html").as_uri()],
                       check=True, capture_output=True)  # fmt: skip
        img = Image.open(shot).convert("RGB")
        img.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(OUT, optimize=True)
    print(f"{OUT}: {OUT.stat().st_size // 1024} KB, {img.size[0]}x{img.size[1]}")


if __name__ == "__main__":
    main()
