"""predict / the transformer against the PyTorch port, through a released-format checkpoint."""

import numpy as np
import torch

from artdup_jax import segswap
from baselines.torch import segswap as reference
from tests.segswap.conftest import nchw, nhwc, random_features, random_images

TOLERANCE = 1e-4


def max_abs_error(name, got, expected):
    got = np.asarray(got)
    assert got.shape == expected.shape, (name, got.shape, expected.shape)
    error = float(np.abs(got - expected).max())
    print(f"\n{name}: max abs err {error:.3g} (value range {expected.min():.3g} .. {expected.max():.3g})")
    return error


def test_predict_matches_torch_for_images_of_different_sizes(torch_segswap, segswap_variables):
    source = random_images(1, (2, 64, 96, 3))  # 4 x 6 cells
    target = random_images(2, (2, 80, 64, 3))  # 5 x 4 cells
    expected = reference.predict(*torch_segswap, nchw(source), nchw(target))
    got = segswap.predict(segswap_variables, source, target)
    for key in ("features_source", "features_target", "source", "target"):
        assert max_abs_error(key, got[key], nhwc(expected[key])) <= TOLERANCE
    assert np.ptp(np.asarray(got["source"])[..., 2]) > 0.2  # the mask is not a constant


def test_transformer_with_key_padding_matches_torch(torch_segswap, segswap_variables):
    _, encoder = torch_segswap
    features_x = random_features(3, (2, 5, 6, 1024))
    features_y = random_features(4, (2, 5, 6, 1024))
    rng = np.random.default_rng(5)
    keys_x = rng.uniform(size=(2, 5, 6)) < 0.7
    keys_y = rng.uniform(size=(2, 5, 6)) < 0.4
    keys_x[:, 0, 0] = keys_y[:, 0, 0] = True  # PyTorch returns NaN when every key is padded
    pad_x, pad_y = (torch.from_numpy(~keys.reshape(2, -1)) for keys in (keys_x, keys_y))  # True = padded
    with torch.no_grad():
        expected_x, expected_y = encoder(nchw(features_x), nchw(features_y), pad_x, pad_y)
    got_x, got_y = segswap.predict_from_features(segswap_variables, features_x, features_y, keys_x, keys_y)
    assert max_abs_error("padded x", got_x, nhwc(expected_x)) <= TOLERANCE
    assert max_abs_error("padded y", got_y, nhwc(expected_y)) <= TOLERANCE
    unpadded_x, _ = segswap.predict_from_features(segswap_variables, features_x, features_y)
    assert np.abs(np.asarray(unpadded_x) - np.asarray(got_x)).max() > 1e-3  # the padding did matter


def test_position_encoding_matches_torch_module():
    expected = reference.PositionEncodingSine(128)(1, 7, 9)[0].numpy().transpose(1, 2, 0)
    got = np.asarray(segswap.sine_position_encoding(7, 9, 256))
    assert max_abs_error("position encoding", got, expected) <= 1e-5
