"""The tool's robust-estimator choice: ``--estimator`` on align / align-group, and weightless discovery's."""

import cv2
import numpy as np
import pytest
import skimage.data

from artdup_jax.app import sift_discovery as discovery_lib
from artdup_jax.app.align import AlignSettings, align_images
from artdup_jax.cli import parsers


@pytest.mark.parametrize("group", [False, True])
def test_align_parsers_default_to_magsac_and_take_release(group):
    parser = parsers.align_parser(group)
    positional = ["a.png", "folder"] if group else ["a.png", "b.png"]
    default = parsers.align_settings(parser.parse_args(positional + ["--out", "x"]))
    assert default.estimator == "magsac" and default.coarse_config().estimator == "magsac"
    release = parsers.align_settings(parser.parse_args(positional + ["--out", "x", "--estimator", "release"]))
    assert release.coarse_config().estimator == "release"
    with pytest.raises(SystemExit):
        parser.parse_args(positional + ["--out", "x", "--estimator", "lmeds"])


def test_an_unknown_estimator_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="estimator"):
        align_images("missing-a.png", "missing-b.png", str(tmp_path / "out"), AlignSettings(estimator="lmeds"))


def _collection(folder):
    """A photograph, a warped copy of it, and an unrelated photograph (256 px)."""
    photo = cv2.resize(skimage.data.astronaut(), (256, 256))
    corners = np.float32([[0, 0], [255, 0], [255, 255], [0, 255]])
    moved = corners + np.float32([[12, 8], [-10, 14], [-6, -12], [9, -7]])
    warped = cv2.warpPerspective(photo, cv2.getPerspectiveTransform(corners, moved), (256, 256))
    other = cv2.resize(skimage.data.coffee(), (256, 256))
    for name, image in (("a_photo.png", photo), ("b_warped.png", warped), ("c_other.png", other)):
        cv2.imwrite(str(folder / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("estimator", ["magsac", "ransac"])
def test_weightless_discovery_finds_the_warped_copy_with_either_estimator(tmp_path, estimator):
    names = _collection(tmp_path)
    config = discovery_lib.SiftDiscoveryConfig(estimator=estimator, pairs_per_batch=4, max_matches=128)
    document, scores = discovery_lib.sift_discovery(tmp_path, names, config)
    assert document["settings"]["method"] == f"sift-{estimator}"
    assert [[i["file"] for i in g["images"]] for g in document["groups"]] == [["a_photo.png", "b_warped.png"]]
    assert max(scores) >= config.min_inliers


def test_discovery_uses_magsac_by_default_and_refuses_unknown_estimators(tmp_path):
    assert discovery_lib.SiftDiscoveryConfig().estimator == "magsac"
    with pytest.raises(ValueError, match="estimator"):
        discovery_lib.sift_discovery(tmp_path, [], discovery_lib.SiftDiscoveryConfig(estimator="lmeds"))
