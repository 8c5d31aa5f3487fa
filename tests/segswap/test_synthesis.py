"""Synthetic segment-swap pairs: ground truth, geometry, blending, sources, determinism."""

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from artdup_jax.segswap import data
from artdup_jax.segswap.data import composer, ground_truth, placement, segments, warps


@pytest.fixture(scope="module")
def bundled_source():
    return segments.make_source("unsupervised")


@pytest.fixture(scope="module")
def styles():
    return data.prepare_styles(segments.bundled_paintings()[:3], max_side=320)


def _iou(a, b):
    a, b = a > 0.5, b > 0.5
    return (a & b).sum() / max((a | b).sum(), 1)


def test_masks_warped_by_the_ground_truth_correspondences_reproduce_each_other(bundled_source, styles):
    # At the spec's size (480², 30² grid), with every augmentation on: Poisson, styles, TPS, 1 and 2 objects.
    config = data.SynthesisConfig(tps_probability=0.5, two_object_probability=0.5)
    a_from_b, b_from_a = [], []
    for index in range(6):
        example = data.make_example(index, seed=7, source=bundled_source, styles=styles, config=config)
        flow_a, flow_b = example["flow_a"].astype(np.float64), example["flow_b"].astype(np.float64)
        a_from_b.append(_iou(ground_truth.sample_cells(example["mask_b"], flow_a), example["mask_a"]))
        b_from_a.append(_iou(ground_truth.sample_cells(example["mask_a"], flow_b), example["mask_b"]))
    assert np.mean(a_from_b) > 0.9 and np.mean(b_from_a) > 0.9, (a_from_b, b_from_a)


@pytest.fixture(scope="module")
def coordinate_source(tmp_path_factory):
    """Images whose colours encode their own normalised coordinates (R = x, G = y), two ellipses each."""
    folder = tmp_path_factory.mktemp("coded")
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    for k in range(4):
        height, width = 300 + 40 * k, 420 - 30 * k
        x = (np.arange(width) + 0.5) / width
        y = (np.arange(height) + 0.5) / height
        image = np.zeros((height, width, 3), np.uint8)
        image[..., 0] = np.round(255 * x)[None, :]
        image[..., 1] = np.round(255 * y)[:, None]
        image[..., 2] = 60 * k
        labels = np.zeros((height, width), np.uint8)
        cv2.ellipse(labels, (width // 4, height // 2), (width // 6, height // 3), 20 * k, 0, 360, 1, -1)
        cv2.ellipse(labels, (3 * width // 4, height // 2), (width // 7, height // 4), 0, 0, 360, 2, -1)
        cv2.imwrite(str(folder / "images" / f"{k}.png"), image[..., ::-1])
        cv2.imwrite(str(folder / "masks" / f"{k}.png"), labels)
    return segments.FolderSegments(folder / "images", folder / "masks", min_area=0.01)


def test_folder_source_gives_one_segment_per_label(coordinate_source):
    assert len(coordinate_source) == 4
    assert [len(coordinate_source.segments(i)) for i in range(4)] == [2, 2, 2, 2]


@pytest.mark.parametrize("tps_probability", [0.0, 1.0])
def test_correspondences_point_at_the_pasted_pixels(coordinate_source, tps_probability):
    """Independent check of the geometry: B's pixels show A's coordinates, which must equal the GT flows."""
    config = data.SynthesisConfig(image_size=256, dilation=0, border_crop_probability=0.0,
                                       blend_modes=("copy",), tps_probability=tps_probability,
                                       two_object_probability=0.5, region_mask_probability=0.0)
    errors_a, errors_b, objects = [], [], set()
    for index in range(8):
        example = data.make_example(index, seed=3, source=coordinate_source, styles=[], config=config)
        objects.add(int(example["num_objects"]))
        assert int(example["tps_grid"]) == (0 if tps_probability == 0 else int(example["tps_grid"]))
        decoded_b = example["image_b"][..., :2]  # (x, y) in A of what each B pixel shows
        centres = ground_truth.cell_centres(config.grid)
        inside_b = example["mask_b"] >= 0.9
        shown_b = ground_truth.sample_cells(decoded_b, centres)
        errors_b.append(np.abs(shown_b - example["flow_b"])[inside_b])
        inside_a = example["mask_a"] >= 0.9
        shown_at_flow = ground_truth.sample_cells(decoded_b, example["flow_a"].astype(np.float64))
        errors_a.append(np.abs(shown_at_flow - centres)[inside_a])
    assert objects == {1, 2}
    errors_a, errors_b = np.concatenate(errors_a), np.concatenate(errors_b)
    assert errors_a.size > 50 and errors_b.size > 50
    # 1/255 colour quantisation; the TPS image warp interpolates its map between 4-px lattice points.
    tolerance = 0.006 if tps_probability == 0 else 0.01
    assert np.percentile(errors_a, 99) < tolerance and np.percentile(errors_b, 99) < tolerance
    assert np.median(errors_a) < 0.004 and np.median(errors_b) < 0.004


def test_cell_sampling_matches_torch_grid_sample():
    rng = np.random.default_rng(0)
    values = rng.uniform(size=(5, 7))
    points = rng.uniform(-0.2, 1.2, size=(4, 6, 2))
    expected = torch.nn.functional.grid_sample(
        torch.from_numpy(values)[None, None], torch.from_numpy(2 * points - 1)[None], mode="bilinear",
        padding_mode="zeros", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(ground_truth.sample_cells(values, points), expected, atol=1e-12)


def test_thin_plate_spline_matches_scipy_and_inverts_approximately():
    from scipy.interpolate import RBFInterpolator

    rng = np.random.default_rng(1)
    grid, warped_to_original, original_to_warped = warps.random_tps(rng, (4,))
    points = rng.uniform(0, 1, size=(50, 2))
    x, y = np.meshgrid(np.linspace(0, 1, grid), np.linspace(0, 1, grid))
    control = np.stack([x.ravel(), y.ravel()], axis=-1)
    reference = RBFInterpolator(control, warped_to_original(control), kernel="thin_plate_spline")
    np.testing.assert_allclose(warped_to_original(points), reference(points), atol=1e-9)
    np.testing.assert_allclose(original_to_warped(warped_to_original(points)), points, atol=1e-5)


def test_poisson_blend_keeps_the_object_where_copy_paste_puts_it():
    rng = np.random.default_rng(0)
    size = 96
    source = np.zeros((size, size, 3), np.uint8)
    source[30:60, 40:70] = (200, 80, 40)
    alpha = np.zeros((size, size), np.float32)
    alpha[22:68, 32:78] = 1.0  # the object with a margin of its own (black) surroundings
    background = np.zeros_like(source)
    poisson = composer.blend(background, source, alpha, "poisson", rng).astype(np.float64)
    copied = composer.blend(background, source, alpha, "copy", rng).astype(np.float64)
    assert np.abs(poisson - copied).mean() < 2.0
    assert np.abs(poisson[30:60, 40:70] - copied[30:60, 40:70]).max() < 12


def test_two_object_layouts_are_sixteen_disjoint_separated_regions():
    size, gap = 480, 16
    layouts = placement.two_object_layouts(size, gap)
    assert len(layouts) == 16 and len(set(layouts)) == 16
    for first, second in layouts:
        for x0, y0, x1, y1 in (first, second):
            assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        separation = max(second[0] - first[2], first[0] - second[2], second[1] - first[3], first[1] - second[3])
        assert separation >= gap


def test_examples_depend_only_on_seed_and_index(styles):
    config = data.SynthesisConfig(image_size=96, blend_modes=("copy", "blur", "poisson"))
    make = lambda seed, index: data.make_example(  # noqa: E731  a fresh source: no shared caches
        index, seed=seed, source=segments.make_source("unsupervised", max_side=320), styles=styles, config=config)
    first, again, other = make(5, 11), make(5, 11), make(6, 11)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["image_a"], other["image_a"])
    signature = data.signature(config)
    assert {n: (v.shape, v.dtype) for n, v in first.items()} == {n: (s, np.dtype(d)) for n, (s, d) in signature.items()}


def test_metadata_records_blending_and_stylisation(bundled_source, styles):
    base = data.SynthesisConfig(image_size=96, tps_probability=0.0)
    for mode in data.BLEND_MODES:
        config = dataclasses.replace(base, blend_modes=(mode,), stylise_probability=1.0)
        example = data.make_example(0, seed=1, source=bundled_source, styles=styles, config=config)
        assert data.BLEND_MODES[int(example["blend"])] == mode
        assert example["stylised"].tolist() == [1, 1]
    plain = data.make_example(0, seed=1, source=bundled_source, styles=[], config=base)
    assert plain["stylised"].tolist() == [0, 0]


def test_objects_come_from_another_content_group(bundled_source):
    config = data.SynthesisConfig(image_size=64, stylise_probability=0.0, tps_probability=0.0)
    for index in range(12):
        groups = data.make_example(index, seed=2, source=bundled_source, styles=[], config=config)["groups"]
        (source_a, _), (background, source_b) = groups
        assert source_a == source_b and background != source_a


def test_unsupervised_segments_are_object_sized_regions(bundled_source):
    images, groups = segments.bundled_images()
    assert len(set(groups[7:])) <= 1  # the unraphael copies share one group
    counts = []
    for index in range(len(bundled_source)):
        image = bundled_source.image(index)
        assert image.dtype == np.uint8 and max(image.shape[:2]) <= 640
        for segment in bundled_source.segments(index):
            assert segment.mask.shape == image.shape[:2]
            assert 0.01 < segment.mask.mean() < 0.45
        counts.append(len(bundled_source.segments(index)))
    assert sum(c > 0 for c in counts) >= len(counts) // 2


def test_coco_source_explains_how_to_prepare_the_dataset(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="tfds build coco/2017_panoptic"):
        segments.CocoSegments(data_dir=str(tmp_path))
