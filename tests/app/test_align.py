"""``align_images`` and ``align_group`` end to end on a real photograph warped by a known homography (SIFT coarse
stage, no weights)."""

import json
import os

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from artdup_jax.app import align


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    source = skimage.data.astronaut()
    h, w = source.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + np.float32([[20, 10], [-15, 25], [-30, -20], [10, -5]])
    target = cv2.warpPerspective(source, cv2.getPerspectiveTransform(corners, moved), (w, h))
    Image.fromarray(source).save(folder / "source.png")
    Image.fromarray(target).save(folder / "target.png")
    Image.fromarray(source[::2, ::2]).save(folder / "small_copy.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def test_pair_alignment_writes_every_output_and_aligns(pair, tmp_path):
    result = align.align_images(str(pair / "source.png"), str(pair / "target.png"), str(tmp_path),
                                align.AlignSettings(size=256, texture_transfer=True))
    assert result.out_dir == str(tmp_path)
    for name in ("target.png", "coarse.png", "blend.png", "blink.gif", "flow.npy", "matchability.png",
                 "summary.json", "texture_transfer.png"):
        assert (tmp_path / name).exists(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    target = np.asarray(Image.open(tmp_path / "target.png"), np.float32) / 255
    coarse = np.asarray(Image.open(tmp_path / "coarse.png"), np.float32) / 255
    inside = target.sum(-1) > 0.05
    assert np.abs(coarse - target)[inside].mean() < 0.04
    assert np.load(tmp_path / "flow.npy").shape == target.shape[:2] + (2,)
    assert len(summary["homographies"]) == 1 and summary["fine"] is False and summary == result.summary


def test_group_mode_reports_unreadable_files_and_aligns_the_rest(pair, tmp_path):
    with pytest.warns(UserWarning, match="broken.png"):
        group = align.align_group(str(pair / "target.png"), str(pair), str(tmp_path), align.AlignSettings(size=256))
    assert [os.path.basename(p.source) for p in group.aligned] == ["small_copy.png", "source.png"]
    report = json.loads((tmp_path / "group.json").read_text())
    assert report["aligned"] == 2 and list(report["failed"]) == [str(pair / "broken.png")]
    assert (tmp_path / "average_after.png").exists() and (tmp_path / "average_before.png").exists()
    before = np.asarray(Image.open(tmp_path / "average_before.png"), np.float32)
    after = np.asarray(Image.open(tmp_path / "average_after.png"), np.float32)
    target = np.asarray(Image.open(tmp_path / "source" / "target.png"), np.float32)
    assert np.abs(after - target).mean() < np.abs(before - target).mean()
