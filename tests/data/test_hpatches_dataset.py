"""HPatches reader and the DGC-Net 240x240 ground truth, on a synthetic sequence and on the real v_churchill."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from artdup_jax.data.datasets import hpatches
from artdup_jax.geometry.sampling import identity_grid

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hpatches"
requires_real = pytest.mark.skipif(not (REAL / "v_churchill").is_dir(),
                                   reason=f"real HPatches data not present at {REAL}")

SOURCE_HW = (48, 64)
# Target sizes differ from the source for k = 3 to exercise the two rescaling matrices.
TARGET_HW = {2: (48, 64), 3: (40, 56), 4: (48, 64), 5: (48, 64), 6: (48, 64)}


def _homography(k):
    H = np.eye(3)
    H[0, 2], H[1, 2] = 1.5 * k, -0.7 * k
    H[0, 0], H[1, 1] = 1 - 0.02 * k, 1 + 0.01 * k
    H[2, 0], H[2, 1] = 4e-4 * k, -2e-4 * k
    return H


def _texture(hw, seed=0):
    small = np.random.default_rng(seed).integers(0, 256, (hw[0] // 4, hw[1] // 4, 3), np.uint8)
    return cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)


def _write_sequence(root: Path, name="v_synthetic"):
    folder = root / name
    folder.mkdir(parents=True)
    source = _texture(SOURCE_HW)
    Image.fromarray(source).save(folder / "1.ppm")
    for k in hpatches.LEVELS:
        h, w = TARGET_HW[k]
        Image.fromarray(cv2.warpPerspective(source, _homography(k), (w, h), flags=cv2.INTER_LINEAR)).save(
            folder / f"{k}.ppm")
        np.savetxt(folder / f"H_1_{k}", _homography(k))
    return folder


def _write_csvs(csv_dir: Path, names):
    csv_dir.mkdir(parents=True, exist_ok=True)
    for k in hpatches.LEVELS:
        lines = [",".join(hpatches.CSV_COLUMNS)]
        for name in names:
            H = _homography(k).ravel()
            lines.append(",".join([name, "1", str(k), f"{SOURCE_HW[0]}.0", f"{SOURCE_HW[1]}.0",
                                   *[repr(float(v)) for v in H]]))
        (csv_dir / f"hpatches_1_{k}.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture()
def release(tmp_path):
    root = tmp_path / "hpatches-sequences-release"
    _write_sequence(root)
    (root / "i_other").mkdir()  # illumination sequences are not read by default
    _write_csvs(tmp_path / "csv", ["v_synthetic"])
    return root


def test_folder_pairs_read_homographies_sizes_and_levels(release):
    pairs = list(hpatches.iter_pairs(release))
    assert [p.level for p in pairs] == ["I", "II", "III", "IV", "V"]
    for p, k in zip(pairs, hpatches.LEVELS):
        assert p.source_path.name == "1.ppm" and p.target_path.name == f"{k}.ppm"
        np.testing.assert_allclose(p.homography, _homography(k))
        assert p.source_size_hw == SOURCE_HW and p.target_size_hw == TARGET_HW[k]


def test_missing_homography_file_is_a_layout_error(release):
    (release / "v_synthetic" / "H_1_4").unlink()
    with pytest.raises(hpatches.HPatchesLayoutError, match="missing H_1_4"):
        list(hpatches.iter_pairs(release))


def test_folder_without_sequences_is_a_layout_error(tmp_path):
    with pytest.raises(hpatches.HPatchesLayoutError, match="no 'v_\\*' sequence folders"):
        list(hpatches.iter_pairs(tmp_path))


def test_csv_pairs_equal_folder_pairs(release):
    from_csv = list(hpatches.iter_csv_pairs(release.parent / "csv", release))
    from_folder = list(hpatches.iter_pairs(release))
    assert [p.name for p in from_csv] == [p.name for p in from_folder]
    for a, b in zip(from_csv, from_folder):
        np.testing.assert_allclose(a.homography, b.homography)
        assert (a.source_size_hw, a.target_size_hw) == (b.source_size_hw, b.target_size_hw)


def test_csv_missing_column_is_a_layout_error(tmp_path):
    (tmp_path / "hpatches_1_2.csv").write_text("obj,im1,im2,H11\nv_x,1,2,1.0\n")
    with pytest.raises(hpatches.HPatchesLayoutError, match="missing columns"):
        hpatches.read_dgc_csv(tmp_path / "hpatches_1_2.csv")


def test_csv_unknown_sequence_is_a_layout_error(release):
    with pytest.raises(hpatches.HPatchesLayoutError, match="no rows for"):
        list(hpatches.iter_csv_pairs(release.parent / "csv", release, sequences=["v_absent"]))


def test_identity_homography_gives_the_ac_identity_grid():
    grid, valid = hpatches.dgc_homography_grid(np.eye(3), (48, 64), (48, 64), out_target_hw=(24, 30))
    np.testing.assert_allclose(grid, np.asarray(identity_grid(24, 30, align_corners=True)), atol=1e-6)
    assert valid.all()


def test_sizes_rescale_source_and_target_separately():
    # Identity between a 64-wide source and a 32-wide target: target 240-px x reads source 240-px x / 2.
    grid, _ = hpatches.dgc_homography_grid(np.eye(3), (48, 64), (24, 32), out_target_hw=(240, 240))
    xs = np.arange(240, dtype=np.float64)
    np.testing.assert_allclose(grid[5, :, 0], 2 * (xs / 2) / 239 - 1, atol=1e-5)
    np.testing.assert_allclose(grid[:, 7, 1], 2 * (xs / 2) / 239 - 1, atol=1e-5)


def test_ground_truth_grid_matches_opencv_transform(release):
    pair = list(hpatches.iter_pairs(release))[1]  # k = 3: different sizes
    grid, valid = hpatches.ground_truth_grid(pair)
    S_t = np.diag([240 / pair.target_size_hw[1], 240 / pair.target_size_hw[0], 1])
    S_s = np.diag([240 / pair.source_size_hw[1], 240 / pair.source_size_hw[0], 1])
    lattice = np.stack(np.meshgrid(np.arange(240.0), np.arange(240.0)), -1).reshape(1, -1, 2)
    expected = cv2.perspectiveTransform(lattice, np.linalg.inv(S_t @ pair.homography @ np.linalg.inv(S_s)))
    expected = (2 * expected / 239 - 1).reshape(240, 240, 2)
    np.testing.assert_allclose(grid, expected, atol=2e-5)
    np.testing.assert_array_equal(valid, np.all(np.abs(grid) <= 1, -1))
    assert 0.3 < valid.mean() < 1.0


def test_full_resolution_ground_truth_matches_opencv_and_bounds(release):
    pair = list(hpatches.iter_pairs(release))[4]
    source_px, valid = hpatches.full_resolution_ground_truth(pair)
    h, w = pair.target_size_hw
    lattice = np.stack(np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)), -1)
    expected = cv2.perspectiveTransform(lattice.reshape(1, -1, 2), np.linalg.inv(pair.homography))
    np.testing.assert_allclose(source_px, expected.reshape(h, w, 2), atol=1e-9)
    inside = ((expected[0, :, 0] >= 0) & (expected[0, :, 0] <= SOURCE_HW[1] - 1)
              & (expected[0, :, 1] >= 0) & (expected[0, :, 1] <= SOURCE_HW[0] - 1))
    np.testing.assert_array_equal(valid.ravel(), inside)


def _photometric_error(source, target, grid, valid, source_hw):
    """Mean |target - source sampled at grid| over valid pixels (cv2.remap, AC -> pixels)."""
    px = (grid.astype(np.float32) + 1) / 2 * np.array([source_hw[1] - 1, source_hw[0] - 1], np.float32)
    warped = cv2.remap(source, px[..., 0], px[..., 1], cv2.INTER_LINEAR)
    return np.abs(warped.astype(np.float64) - target)[valid].mean()


def test_ground_truth_grid_warps_source_onto_target(release):
    pair = list(hpatches.iter_pairs(release))[1]
    source = np.asarray(Image.open(pair.source_path), np.float64)
    target = np.asarray(Image.open(pair.target_path), np.float64)
    grid, valid = hpatches.dgc_homography_grid(pair.homography, pair.source_size_hw, pair.target_size_hw,
                                               out_target_hw=pair.target_size_hw,
                                               out_source_hw=pair.source_size_hw)
    interior = valid & (np.abs(grid) < 0.9).all(-1)
    assert _photometric_error(source.astype(np.float32), target, grid, interior, pair.source_size_hw) < 1.0


@requires_real
def test_real_csv_rows_equal_the_sequence_homographies():
    csv_pairs = list(hpatches.iter_csv_pairs(REAL, REAL, sequences=["v_churchill"]))
    folder_pairs = list(hpatches.iter_pairs(REAL, sequences=["v_churchill"]))
    assert len(csv_pairs) == 5
    for a, b in zip(csv_pairs, folder_pairs):
        np.testing.assert_allclose(a.homography, b.homography, rtol=1e-6)
        assert a.source_size_hw == b.source_size_hw == (1024, 768)
    rows = hpatches.read_dgc_csv(hpatches.csv_path(REAL, 2))
    assert len(rows) == 59 and all(r["obj"].startswith("v_") for r in rows)


@requires_real
@pytest.mark.parametrize("k", [2, 6])
def test_real_240_ground_truth_aligns_the_images(k):
    pair = next(p for p in hpatches.iter_pairs(REAL, sequences=["v_churchill"]) if p.target_index == k)
    grid, valid = hpatches.ground_truth_grid(pair)
    source = cv2.resize(np.asarray(Image.open(pair.source_path).convert("L"), np.float32), (240, 240),
                        interpolation=cv2.INTER_AREA)
    target = cv2.resize(np.asarray(Image.open(pair.target_path).convert("L"), np.float32), (240, 240),
                        interpolation=cv2.INTER_AREA)
    aligned = _photometric_error(source, target, grid, valid, (240, 240))
    unaligned = np.abs(source - target)[valid].mean()
    assert aligned < 0.35 * unaligned
