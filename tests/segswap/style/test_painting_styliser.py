"""``PaintingStyliser``: the spec's preprocessing around AdaIN, on uint8 images."""

import cv2
import numpy as np

from artdup_jax.segswap import style


def test_styliser_is_adain_at_the_working_size_resized_back(converted):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 40, 3), np.uint8)
    painting = rng.integers(0, 256, (60, 36, 3), np.uint8)
    styliser = style.PaintingStyliser(converted, working_side=32)
    out = styliser(image, painting, 0.7)
    assert out.shape == image.shape and out.dtype == np.uint8

    content = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)[None].astype(np.float32) / 255
    shorter = cv2.resize(painting, (32, 53), interpolation=cv2.INTER_AREA)[None].astype(np.float32) / 255
    expected = np.asarray(style.stylise(converted, content, shorter, 0.7))[0]
    expected = cv2.resize(expected, (40, 40), interpolation=cv2.INTER_LINEAR)
    assert np.abs(out.astype(np.float64) - expected * 255).max() <= 1.0


def test_painting_statistics_are_computed_once_per_painting(converted):
    rng = np.random.default_rng(1)
    paintings = [rng.integers(0, 256, (32, 48, 3), np.uint8) for _ in range(2)]
    styliser = style.PaintingStyliser(converted, working_side=32)
    image = rng.integers(0, 256, (32, 32, 3), np.uint8)
    first = [styliser(image, p, 1.0) for p in paintings]
    again = [styliser(image, p, 1.0) for p in paintings]
    assert len(styliser._statistics) == 2
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert np.abs(first[0].astype(int) - first[1].astype(int)).max() > 0  # the style matters
