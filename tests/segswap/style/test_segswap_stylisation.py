"""SegSwap's synthetic pairs stylised by AdaIN when a styliser is given, and the metadata says which."""

import dataclasses

import numpy as np
import pytest

from artdup_jax.segswap import data, style
from artdup_jax.segswap.data import segments

CONFIG = data.SynthesisConfig(image_size=64, stylise_probability=1.0, tps_probability=0.0)


@pytest.fixture(scope="module")
def source():
    return segments.make_source("unsupervised", max_side=160)


@pytest.fixture(scope="module")
def styles():
    return data.prepare_styles(segments.bundled_paintings()[:2], max_side=160)


class RecordingStyliser:
    """Returns a constant image and records its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, image, painting, alpha):
        self.calls.append((image.shape, image.dtype, painting, alpha))
        return np.full_like(image, 200)


def test_a_styliser_paints_both_images_and_the_metadata_says_adain(source, styles):
    styliser = RecordingStyliser()
    example = data.make_example(0, seed=1, source=source, styles=styles, config=CONFIG, styliser=styliser)
    assert data.STYLE_METHODS[int(example["style_method"])] == "adain"
    assert example["stylised"].tolist() == [1, 1]
    assert len(styliser.calls) == 2  # A and B of the accepted pair only, even when earlier tries were rejected
    for shape, dtype, painting, alpha in styliser.calls:
        assert shape == (64, 64, 3) and dtype == np.uint8
        assert any(painting is s.pixels for s in styles)
        assert 0 <= alpha <= 1
    np.testing.assert_allclose(example["image_a"], 200 / 255)


def test_without_a_styliser_the_metadata_says_classical(source, styles):
    example = data.make_example(0, seed=1, source=source, styles=styles, config=CONFIG)
    assert data.STYLE_METHODS[int(example["style_method"])] == "classical"


def test_pool_images_use_the_styliser_too(source, styles):
    styliser = RecordingStyliser()
    config = dataclasses.replace(CONFIG, stylise_probability=1.0)
    data.make_example(3, seed=2, source=source, styles=styles, config=config, pool_images=4, styliser=styliser)
    assert len(styliser.calls) > 2  # A and B, plus the pool images that drew the 0.5 stylisation coin


def test_adain_styliser_from_converted_weights_runs_in_the_example(source, styles, converted, tmp_path):
    from artdup_jax.convert import save_variables

    weights = save_variables(converted, tmp_path / "adain")
    styliser = style.load_painting_styliser(weights, working_side=64)
    example = data.make_example(0, seed=1, source=source, styles=styles, config=CONFIG, styliser=styliser)
    # The recording styliser draws the same random numbers (only α), so the pair itself is the same.
    recorded = data.make_example(0, seed=1, source=source, styles=styles, config=CONFIG,
                                      styliser=RecordingStyliser())
    assert example["image_a"].shape == (64, 64, 3) and 0 <= example["image_a"].min() <= example["image_a"].max() <= 1
    assert example["image_a"].std() > 0.01  # a painted image, not a constant
    np.testing.assert_array_equal(example["mask_a"], recorded["mask_a"])  # stylisation leaves the labels alone
    np.testing.assert_array_equal(example["flow_b"], recorded["flow_b"])
