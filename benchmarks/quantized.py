"""Would an int8 classifier do? Each ensemble member quantised (onnxruntime dynamic int8) against its fp32 model on
labelled face crops: how often the argmax agrees (issue 24 asks >= 99 %) and the CPU time per face of each.

Why: the classifier is most of a default run's time on a one-face video; a quantised member is only a candidate
where its answers stay those of the fp32 model. Crops are cut as ``--detector none`` cuts them (the whole image).

    python benchmarks/quantized.py --set ../shared/data/expressions/fer2013-privatetest
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from crops_folder import crops_of  # noqa: E402

from fer_batch.analysis import models  # noqa: E402
from fer_batch.analysis.classify import Classifier  # noqa: E402
from fer_batch.options import Options  # noqa: E402


def timed(member: object, crops: np.ndarray) -> tuple[np.ndarray, float]:
    c0 = time.process_time()
    probs = member.predict(crops)  # type: ignore[attr-defined]
    return probs, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, required=True, help="a folder of face crops (searched recursively)")
    a = ap.parse_args(argv)
    files = sorted(p for p in a.set.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    clf = Classifier(Options.of(detector="none", device="cpu", threads=1))
    crops = crops_of(files, clf)
    print(f"{len(files)} crops of {a.set}; onnxruntime 1 thread, CPU time of the network calls only")
    print("| member | argmax agrees with fp32 | fp32 ms CPU/face | int8 ms CPU/face |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for m, c in zip(clf.members, crops, strict=True):
            ref, t_ref = timed(m, c)
            q_path = Path(tmp) / f"{m.spec.id}.int8.onnx"
            quantize_dynamic(str(m.spec.path), str(q_path), weight_type=QuantType.QInt8)
            m.session = models.session(q_path, "cpu", 1)
            got, t_q = timed(m, c)
            agree = float(np.mean(ref.argmax(1) == got.argmax(1)))
            print(f"| {m.spec.id} | {100 * agree:.2f} % | {1000 * t_ref / len(c):.2f} | {1000 * t_q / len(c):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
