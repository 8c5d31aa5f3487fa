"""``align_classical`` end to end: real copies (Raphael, Brueghel), synthetic copies with known homographies,
and the pairs that must fail (unrelated images, the identity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from artdup_jax.geometry.classical import align_classical
from tests.geometry.synthetic_copies import (
    REFERENCE,
    alignment_error,
    read_rgb,
    synthetic_copies,
    unraphael_images,
)

BRUEGHEL = Path(__file__).resolve().parents[3] / "shared" / "data" / "brueghel"
MAX_ERROR = 0.02  # of the target's longer side


@pytest.fixture(scope="module")
def raphael_alignments():
    folder = unraphael_images()
    if folder is None:
        pytest.skip("the unraphael package (its Raphael copies) is not installed; run scripts/setup")
    reference = read_rgb(folder / REFERENCE)
    copies = sorted(p for p in folder.glob("*.jpg") if p.name != REFERENCE)
    return {p.name: align_classical(read_rgb(p), reference) for p in copies}


@pytest.fixture(scope="module")
def synthetic_alignments():
    return [(name, align_classical(source, target), H_true, source.shape[:2], target.shape[:2])
            for name, source, target, H_true in synthetic_copies()]


def test_all_ten_raphael_copies_align_onto_the_edinburgh_original(raphael_alignments):
    assert len(raphael_alignments) == 10
    failed = {name: result.reason for name, result in raphael_alignments.items() if not result.verified}
    assert not failed


def test_the_brueghel_detail_pair_aligns():
    if not (BRUEGHEL / "detail_pair_a.png").is_file():
        pytest.skip(f"{BRUEGHEL} is absent (the shared data folder)")
    result = align_classical(read_rgb(BRUEGHEL / "detail_pair_a.png"), read_rgb(BRUEGHEL / "detail_pair_b.png"))
    assert result.verified, result.reason


def test_nine_in_ten_synthetic_copies_align_within_two_percent(synthetic_alignments):
    good = [name for name, result, H_true, source_hw, target_hw in synthetic_alignments
            if result.verified and alignment_error(result.homography, H_true, source_hw, target_hw)
            <= MAX_ERROR * max(target_hw)]
    assert len(good) >= 9, sorted({name for name, *_ in synthetic_alignments} - set(good))


def test_a_verified_synthetic_copy_is_never_misaligned(synthetic_alignments):
    wrong = [name for name, result, H_true, source_hw, target_hw in synthetic_alignments
             if result.verified and alignment_error(result.homography, H_true, source_hw, target_hw)
             > 0.05 * max(target_hw)]
    assert not wrong


@pytest.mark.parametrize("source, target", [("astronaut", "coffee"), ("rocket", "camera"), ("page", "chelsea")])
def test_unrelated_photographs_are_not_verified(source, target):
    result = align_classical(getattr(skimage.data, source)(), getattr(skimage.data, target)())
    assert not result.verified and result.reason


def test_the_identity_alone_is_never_a_success():
    image, other = skimage.data.astronaut(), skimage.data.astronaut()[::-1]
    result = align_classical(image, other, methods=("identity",), refine_ecc=False)
    assert not result.verified and result.method == "identity" and "identity" in result.reason


def test_a_pair_already_aligned_is_no_better_than_the_identity_so_not_a_success():
    image = skimage.data.coffee()
    result = align_classical(image, image)
    assert result.score == pytest.approx(result.identity_score, abs=0.05)
    assert not result.verified and "identity" in result.reason
    assert alignment_error(result.homography, np.eye(3), image.shape[:2], image.shape[:2]) < 1.0
