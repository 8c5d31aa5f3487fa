"""The segswap task stylises with AdaIN when ``config.input.adain_weights`` names converted weights."""

import numpy as np

from artdup_jax.convert import save_variables
from artdup_jax.segswap import data, task
from configs.segswap import get_config


def test_config_with_adain_weights_makes_adain_examples(converted, tmp_path):
    config = get_config("tiny")
    config.input.stylise_probability = 1.0
    config.input.adain_weights = save_variables(converted, tmp_path / "adain")
    example = task._example_fn(config, config.seed)(0)
    assert data.STYLE_METHODS[int(example["style_method"])] == "adain"
    assert example["stylised"].tolist() == [1, 1]
    assert np.isfinite(example["image_a"]).all()


def test_default_config_makes_classical_examples():
    config = get_config("tiny")
    assert config.input.adain_weights == ""
    example = task._example_fn(config, config.seed)(0)
    assert data.STYLE_METHODS[int(example["style_method"])] == "classical"
