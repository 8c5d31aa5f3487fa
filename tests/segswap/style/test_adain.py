"""AdaIN in JAX against our PyTorch port of the naoto0804 networks, through the ``adain`` converter."""

import numpy as np
import pytest
import torch

from artdup_jax.segswap import style
from baselines.torch import adain as torch_adain

PARITY = 1e-4  # max |jax - torch| / max |torch|


def relative_error(ours, reference) -> float:
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy().transpose(0, 2, 3, 1)


def images(shape, seed) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(2, 64, 64, 3), (1, 50, 70, 3)])  # 50×70: odd sizes, ceil-mode pools
def test_encoder_matches_torch(converted, torch_networks, shape):
    content = images(shape, seed=0)
    with torch.no_grad():
        reference = nhwc(torch_adain.encoder(torch_networks[0])(nchw(content)))
    ours = style.encode(converted, content)
    assert ours.shape == reference.shape == (shape[0], -(-shape[1] // 8), -(-shape[2] // 8), 512)
    assert relative_error(ours, reference) < PARITY


def test_decoder_matches_torch(converted, torch_networks):
    features = np.random.default_rng(1).normal(0, 1, (2, 8, 6, 512)).astype(np.float32)
    with torch.no_grad():
        reference = nhwc(torch_networks[1](nchw(features)))
    ours = style.decode(converted, features)
    assert ours.shape == reference.shape == (2, 64, 48, 3)
    assert relative_error(ours, reference) < PARITY


def test_stylise_matches_official_style_transfer(converted, torch_networks):
    content, painting = images((1, 64, 64, 3), seed=2), images((1, 48, 80, 3), seed=3)
    vgg_encoder = torch_adain.encoder(torch_networks[0])
    for alpha in (0.0, 0.35, 1.0):
        reference = nhwc(torch_adain.style_transfer(vgg_encoder, torch_networks[1], nchw(content), nchw(painting),
                                                    alpha))
        unclamped = style.stylise(converted, content, painting, alpha, clamp=False)
        assert relative_error(unclamped, reference) < PARITY
        clamped = np.asarray(style.stylise(converted, content, painting, alpha))
        np.testing.assert_allclose(clamped, np.clip(reference, 0, 1), atol=PARITY * np.abs(reference).max())


def test_stylise_from_cached_style_statistics_is_stylise(converted):
    content, painting = images((2, 32, 32, 3), seed=4), images((2, 40, 56, 3), seed=5)
    alpha = np.array([0.2, 0.9], np.float32)
    mean, std = style.style_statistics(converted, painting)
    np.testing.assert_allclose(style.stylise_with_statistics(converted, content, mean, std, alpha),
                               style.stylise(converted, content, painting, alpha), atol=1e-5)


# ---- AdaIN statistics (float64 NumPy references) ----


def test_feature_statistics_are_mean_and_unbiased_std_plus_eps():
    features = np.random.default_rng(6).normal(2, 3, (2, 5, 7, 4)).astype(np.float32)
    mean, std = style.feature_statistics(features)
    flat = features.astype(np.float64).reshape(2, 35, 4)
    np.testing.assert_allclose(np.asarray(mean)[:, 0, 0], flat.mean(1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(std)[:, 0, 0], np.sqrt(flat.var(1, ddof=1) + 1e-5), rtol=1e-5)


def test_adain_output_carries_the_style_statistics():
    rng = np.random.default_rng(7)
    content = rng.normal(-1, 0.5, (2, 6, 6, 8)).astype(np.float32)
    painting = rng.normal(3, 2, (2, 9, 5, 8)).astype(np.float32)
    out = np.asarray(style.adain(content, painting), np.float64).reshape(2, 36, 8)
    flat_style = painting.astype(np.float64).reshape(2, 45, 8)
    np.testing.assert_allclose(out.mean(1), flat_style.mean(1), atol=1e-4)
    # out's std is σ_s · std(f_c)/σ_c, σ_c carrying the eps: equal to σ_s up to the eps' share of σ_c.
    content_std = content.astype(np.float64).reshape(2, 36, 8).std(1, ddof=1)
    expected = np.sqrt(flat_style.var(1, ddof=1) + 1e-5) * content_std / np.sqrt(content_std**2 + 1e-5)
    np.testing.assert_allclose(out.std(1, ddof=1), expected, rtol=1e-4)


def test_adain_ignores_a_per_channel_affine_change_of_the_content():
    rng = np.random.default_rng(8)
    content = rng.normal(0, 1, (1, 8, 8, 4)).astype(np.float32)
    painting = rng.normal(1, 2, (1, 8, 8, 4)).astype(np.float32)
    scale, shift = np.array([0.5, 2, 3, 10], np.float32), np.array([1, -2, 0, 5], np.float32)
    np.testing.assert_allclose(style.adain(content * scale + shift, painting), style.adain(content, painting),
                               atol=1e-3)
