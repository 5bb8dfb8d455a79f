"""Face detectors: ``detector(frames) -> Faces`` with boxes in pixels of the displayed frame.

Both scan ``Frames.small_image`` (the downscaled detector image, made on demand) and map boxes back to full
resolution.
"""

from __future__ import annotations

from fer_batch.analysis.detect.base import Detector, RegionDetector, finish, nms, scan_images
from fer_batch.options import Options

__all__ = ["Detector", "RegionDetector", "detector_sha256", "finish", "make_detector", "nms", "scan_images"]


def make_detector(options: Options) -> Detector:
    """The detector that ``options.detector`` names."""
    if options.detection.detector == "none":
        from fer_batch.analysis.detect.whole import WholeFrame

        return WholeFrame(options)
    if options.detection.detector == "haar":
        from fer_batch.analysis.detect.haar import HaarDetector

        return HaarDetector(options)
    from fer_batch.analysis.detect.centerface import CenterFace

    return CenterFace(options, scan_model=options.detection.detector)


def detector_sha256(options: Options) -> str:
    """The checksum a table records for the detector ``options`` names, without making its sessions."""
    if options.detection.detector == "none":
        from fer_batch.analysis.detect.whole import WholeFrame

        return WholeFrame.sha256
    if options.detection.detector == "haar":
        from fer_batch.analysis.detect.haar import cascade_sha256

        return cascade_sha256()
    from fer_batch.analysis.detect.centerface import fingerprint

    return fingerprint(options.detection.detector)[2]
