"""MegaDepth / RobotCar sparse CSV reader, resize rule and pooled PCK on a tiny layout written by the test."""

import numpy as np
import pytest
from PIL import Image

from artdup_jax.data.datasets import megadepth
from artdup_jax.ransac_flow import metrics


def _list(values):
    return ";".join(repr(float(v)) for v in values)


@pytest.fixture()
def layout(tmp_path):
    images = tmp_path / "test1600Pairs"
    (images / "0015").mkdir(parents=True)
    Image.new("RGB", (600, 400)).save(images / "0015" / "a.jpg")
    Image.new("RGB", (600, 400)).save(images / "0015" / "b.jpg")
    Image.new("RGB", (1000, 700)).save(images / "c.jpg")
    Image.new("RGB", (1000, 700)).save(images / "d.jpg")
    # Pair 0 (600x400 -> 720x480, ratio 1.2): the source is the target shifted by +5 px in x (original px).
    xb, yb = np.array([10.0, 100.5, 300.2, 590.0]), np.array([20.0, 200.7, 150.0, 399.5])
    xa, ya = xb + 5.0, yb.copy()
    xa[3] = 700.0  # outside the source: dropped (MegaDepth rule)
    rows = ["scene,source_image,target_image,XA,YA,XB,YB",
            f"0015,a.jpg,b.jpg,{_list(xa)},{_list(ya)},{_list(xb)},{_list(yb)}",
            f"/,c.jpg,d.jpg,{_list([1.0, 2.0])},{_list([3.0, 4.0])},{_list([5.0, 6.0])},{_list([7.0, 8.0])}"]
    (tmp_path / "test1600Pairs.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_rows_and_scene_folders(layout):
    pairs = list(megadepth.iter_sparse_pairs(layout / "test1600Pairs.csv", layout / "test1600Pairs"))
    assert [p.index for p in pairs] == [0, 1]
    assert pairs[0].source_path == layout / "test1600Pairs" / "0015" / "a.jpg"
    assert pairs[1].target_path == layout / "test1600Pairs" / "d.jpg"  # scene "/" = the folder itself
    assert pairs[0].source_xy.shape == (4, 2) and pairs[0].source_xy.dtype == np.float32
    np.testing.assert_allclose(pairs[1].target_xy, [[5, 7], [6, 8]])


def test_missing_image_is_a_layout_error(layout):
    (layout / "test1600Pairs" / "d.jpg").unlink()
    with pytest.raises(megadepth.SparseLayoutError, match="d.jpg not found"):
        list(megadepth.iter_sparse_pairs(layout / "test1600Pairs.csv", layout / "test1600Pairs"))


def test_mismatched_lists_are_a_layout_error(tmp_path):
    (tmp_path / "x.csv").write_text("scene,source_image,target_image,XA,YA,XB,YB\n/,a,b,1;2,1,1;2,1;2\n")
    with pytest.raises(megadepth.SparseLayoutError, match="different lengths"):
        list(megadepth.iter_sparse_pairs(tmp_path / "x.csv", tmp_path, check_images=False))


def test_shorter_side_480_floored_to_16():
    assert megadepth.shorter_side_size((600, 400)) == (720, 480)
    # 1000x700: ratio 700/480, width round(685.71) = 686 -> 672.
    assert megadepth.shorter_side_size((1000, 700)) == (672, 480)
    assert megadepth.shorter_side_size((480, 1000)) == (480, 992)


def test_prepare_pair_scales_and_drops_outside_points_for_megadepth(layout):
    pair = next(megadepth.iter_sparse_pairs(layout / "test1600Pairs.csv", layout / "test1600Pairs"))
    md = megadepth.prepare_pair(pair, megadepth=True)
    assert md["source_size_hw"] == (480, 720) and md["target_size_hw"] == (480, 720)
    assert len(md["source_xy"]) == 3
    np.testing.assert_allclose(md["target_xy"][1], [100.5 * 1.2, 200.7 * 1.2], rtol=1e-6)
    robotcar = megadepth.prepare_pair(pair, megadepth=False)
    assert len(robotcar["source_xy"]) == 4


def test_pooled_pck_of_a_shift_prediction(layout):
    pairs = list(megadepth.iter_sparse_pairs(layout / "test1600Pairs.csv", layout / "test1600Pairs"))
    md = megadepth.prepare_pair(pairs[0], megadepth=True)
    h, w = md["target_size_hw"]
    # Predict the true shift: +6 px in the 720-wide resized images (5 px x 1.2).
    g = np.stack(np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h)), -1)
    grid = g + np.array([6.0 * 2 / (w - 1), 0.0])
    counts, n = metrics.sparse_pck_counts(grid, md["source_size_hw"], md["source_xy"], md["target_xy"])
    # Reference by hand: truncate both, compare.
    xa, ya = md["source_xy"].astype(np.int64).T
    xb, yb = md["target_xy"].astype(np.int64).T
    err = np.hypot(xb + 6.0 - xa, yb - ya)
    np.testing.assert_array_equal(counts, [(err <= t).sum() for t in metrics.SPARSE_PCK_THRESHOLDS])
    # Pair 1 has no prediction: its 2 points count as failures in the pooled PCK.
    pck = metrics.pooled_pck([counts, np.zeros(8)], [n, 2])
    np.testing.assert_allclose(pck, counts / (n + 2))
