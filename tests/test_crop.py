"""Crop geometry: exact where it must be (slices, area reduction, eye alignment), never stretched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_batch.analysis.crop import WHOLE, CropSpec, crop_one

NO_LANDMARKS = np.full((5, 2), np.nan, np.float32)
IMG = (np.arange(120 * 100).reshape(120, 100) * 7 % 251).astype(np.uint8)


def test_whole_image_at_its_own_size_is_the_image() -> None:
    out = crop_one(IMG[:100], np.array([0, 0, 100, 100.0]), NO_LANDMARKS, WHOLE, (100, 100))
    np.testing.assert_array_equal(out, IMG[:100])


def test_box_at_output_size_is_a_slice() -> None:
    out = crop_one(IMG, np.array([10, 20, 42, 52.0]), NO_LANDMARKS, CropSpec(margin=0), (32, 32))
    np.testing.assert_array_equal(out, IMG[20:52, 10:42])


def test_margin_widens_the_box_on_each_side() -> None:
    out = crop_one(IMG, np.array([20, 30, 60, 70.0]), NO_LANDMARKS, CropSpec(margin=0.25), (60, 60))
    np.testing.assert_array_equal(out, IMG[20:80, 10:70])


def test_large_faces_are_reduced_by_area_averaging() -> None:
    """Halving a crop averages 2x2 blocks like cv2.INTER_AREA; a plain bilinear warp would alias."""
    out = crop_one(IMG[:100], np.array([0, 0, 100, 100.0]), NO_LANDMARKS, WHOLE, (50, 50))
    np.testing.assert_array_equal(out, cv2.resize(IMG[:100], (50, 50), interpolation=cv2.INTER_AREA))


def test_tall_box_gets_a_square_crop_not_a_stretched_one() -> None:
    """A 20x40 box in a square input: the crop is 40x40 around the box's centre."""
    out = crop_one(IMG, np.array([30, 20, 50, 60.0]), NO_LANDMARKS, CropSpec(margin=0), (40, 40))
    np.testing.assert_array_equal(out, IMG[20:60, 20:60])


def test_outside_the_frame_repeats_the_border() -> None:
    out = crop_one(IMG, np.array([-10, 0, 30, 40.0]), NO_LANDMARKS, CropSpec(margin=0), (40, 40))
    np.testing.assert_array_equal(out[:, 10:], IMG[0:40, 0:30])
    np.testing.assert_array_equal(out[:, :10], np.repeat(IMG[0:40, :1], 10, axis=1))


@pytest.mark.parametrize("degrees", [20.0, -35.0])
def test_alignment_levels_the_eyes(degrees: float) -> None:
    """A face turned by an angle, cut with eye alignment, equals the upright face cut without it."""
    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.integers(0, 255, (200, 200), dtype=np.uint8), (0, 0), 3)
    centre = (99.5, 99.5)
    turned = cv2.warpAffine(face, cv2.getRotationMatrix2D(centre, -degrees, 1.0), (200, 200),
                            flags=cv2.INTER_CUBIC)  # fmt: skip
    a = np.deg2rad(degrees)
    eyes = np.array([[-20.0, -10.0], [20.0, -10.0]])  # upright eyes relative to the centre (x right, y down)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm = NO_LANDMARKS.copy()
    lm[:2] = eyes @ rot.T + np.array([100.0, 100.0])
    box = np.array([60, 60, 140, 140.0])
    upright = crop_one(face, box, NO_LANDMARKS, CropSpec(margin=0), (80, 80))
    aligned = crop_one(turned, box, lm, CropSpec(margin=0, align=True), (80, 80))
    unaligned = crop_one(turned, box, lm, CropSpec(margin=0, align=False), (80, 80))
    err = np.abs(aligned.astype(int) - upright)[10:-10, 10:-10].mean()
    assert err < 3 < np.abs(unaligned.astype(int) - upright)[10:-10, 10:-10].mean()


def test_manifest_crop_object_and_override() -> None:
    entry = {"id": "m", "crop": {"margin": 0.2, "square": True, "align": "eyes", "shift": 0.05}}
    assert CropSpec.from_entry(entry) == CropSpec(margin=0.2, square=True, align=True, shift=0.05)
    assert CropSpec.from_entry(entry, margin=0.0).margin == 0.0
    assert CropSpec.from_entry({"id": "m"}) == CropSpec()
    with pytest.raises(ValueError, match="unknown crop key"):
        CropSpec.from_entry({"id": "m", "crop": {"zoom": 2}})


def test_colour_crop_from_planes_matches_the_converted_frame() -> None:
    """Cutting a colour crop from the 4:2:0 planes equals cutting it from the whole frame converted to BGR."""
    from fer_batch.planes import i420_views

    rng = np.random.default_rng(1)
    bgr = cv2.GaussianBlur(rng.integers(0, 255, (121, 161, 3), dtype=np.uint8), (0, 0), 2)[:120, :160]
    i420 = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2YUV_I420)
    planes = tuple(p.copy() for p in i420_views(i420, 160, 120))
    full = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    for box, size in (([31, 17, 91, 77], (60, 60)), ([-5, 40, 45, 119], (50, 50)), ([10, 10, 150, 110], (64, 64))):
        a = crop_one(planes, np.array(box, np.float64), NO_LANDMARKS, CropSpec(margin=0.1), size)
        b = crop_one(full, np.array(box, np.float64), NO_LANDMARKS, CropSpec(margin=0.1), size)
        assert a.shape == b.shape == (size[1], size[0], 3)
        assert np.abs(a.astype(int) - b).mean() < 1.0


@pytest.mark.parametrize("limited", [True, False])
def test_gray_crop_from_the_luma_plane_equals_the_mapped_frame(limited: bool) -> None:
    """A crop cut from a decoded luma plane (mapped to full range where it is read) is the crop of the mapped frame,
    pixel for pixel, wherever the box lies (inside, over an edge, reduced by area, rotated)."""
    from fer_batch.planes import LIMITED_TO_FULL, Luma

    luma = Luma(IMG, limited=limited)
    gray = cv2.LUT(IMG, LIMITED_TO_FULL) if limited else IMG
    assert luma.shape == IMG.shape
    np.testing.assert_array_equal(luma.image(), gray)
    lm = NO_LANDMARKS.copy()
    lm[:2] = [[40.0, 50.0], [70.0, 58.0]]  # tilted eyes
    for box, size in (([10, 20, 42, 52], (32, 32)), ([-10, 60, 50, 130], (40, 40)), ([0, 0, 100, 120], (30, 30))):
        for spec in (CropSpec(margin=0.1), CropSpec(margin=0.2, align=True, shift=0.05)):
            a = crop_one(luma, np.array(box, np.float64), lm, spec, size)
            np.testing.assert_array_equal(a, crop_one(gray, np.array(box, np.float64), lm, spec, size))
    if limited:
        assert not np.array_equal(luma.image(), IMG)  # the mapping did something: the test can fail
