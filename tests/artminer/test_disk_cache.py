"""Feature maps persist in a folder: a second cache (another run) reads them instead of running the network,
and anything that decides a map (the image file, the weights, the scale) gives a new file."""

import os

import jax
import numpy as np

from artdup_jax.artminer import FeatureCache

SCALES = (12, 9)


def _paths(exact_copies, n=3):
    return [str(exact_copies.folder / name) for name in exact_copies.images[:n]]


def test_a_second_run_reads_the_maps_back(variables, exact_copies, tmp_path):
    paths = _paths(exact_copies)
    first = FeatureCache(variables, directory=tmp_path / "maps")
    first.ensure(paths, SCALES, 1)
    assert first.maps_computed == len(paths) * len(SCALES) and first.maps_loaded == 0
    files = [os.path.join(d, f) for d, _, names in os.walk(tmp_path / "maps") for f in names]
    assert len(files) == len(paths) * len(SCALES) and not any(os.path.basename(f).startswith(".tmp") for f in files)

    second = FeatureCache(variables, directory=tmp_path / "maps")
    second.ensure(paths, SCALES, 1)
    assert second.maps_computed == 0 and second.maps_loaded == len(paths) * len(SCALES)
    for path in paths:
        for scale in SCALES:
            np.testing.assert_array_equal(np.asarray(second.get(path, scale, 1)), np.asarray(first.get(path, scale, 1)))


def test_changed_image_weights_or_damaged_file_are_recomputed(variables, exact_copies, tmp_path):
    source = _paths(exact_copies, 1)[0]
    image = tmp_path / "image.png"
    image.write_bytes(open(source, "rb").read())
    FeatureCache(variables, directory=tmp_path / "maps").ensure([str(image)], SCALES[:1], 1)

    os.utime(image, ns=(0, 10**18))  # "edited": new modification time
    edited = FeatureCache(variables, directory=tmp_path / "maps")
    edited.ensure([str(image)], SCALES[:1], 1)
    assert edited.maps_computed == 1 and edited.maps_loaded == 0

    other_weights = jax.tree_util.tree_map(lambda x: x * 1.01, variables)
    retrained = FeatureCache(other_weights, directory=tmp_path / "maps")
    retrained.ensure([str(image)], SCALES[:1], 1)
    assert retrained.maps_computed == 1 and retrained.maps_loaded == 0

    location = edited.disk_path(FeatureCache.key(str(image), SCALES[0], 1))
    with open(location, "wb") as damaged:
        damaged.write(b"half a file")
    again = FeatureCache(variables, directory=tmp_path / "maps")
    again.ensure([str(image)], SCALES[:1], 1)
    assert again.maps_computed == 1 and np.load(location).shape[-1] == 256
