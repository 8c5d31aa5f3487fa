"""The sine position encoding against the paper's formula, evaluated in float64."""

import numpy as np
import pytest

from artdup_jax.segswap import sine_position_encoding


def direct_formula(height: int, width: int, channels: int) -> np.ndarray:
    per_axis = channels // 2
    out = np.zeros((height, width, channels))
    for r in range(1, height + 1):
        for c in range(1, width + 1):
            y_hat = r / (height + 1e-6) * 2 * np.pi
            x_hat = c / (width + 1e-6) * 2 * np.pi
            for m in range(per_axis // 2):
                omega = 10000.0 ** (-2 * m / per_axis)
                out[r - 1, c - 1, 2 * m] = np.sin(y_hat * omega)
                out[r - 1, c - 1, 2 * m + 1] = np.cos(y_hat * omega)
                out[r - 1, c - 1, per_axis + 2 * m] = np.sin(x_hat * omega)
                out[r - 1, c - 1, per_axis + 2 * m + 1] = np.cos(x_hat * omega)
    return out


@pytest.mark.parametrize("height, width, channels", [(3, 5, 256), (6, 4, 32), (1, 2, 8)])
def test_encoding_equals_the_direct_formula(height, width, channels):
    got = np.asarray(sine_position_encoding(height, width, channels))
    assert got.shape == (height, width, channels)
    np.testing.assert_allclose(got, direct_formula(height, width, channels), atol=2e-6, rtol=0)


def test_rows_come_first_and_columns_second():
    encoding = np.asarray(sine_position_encoding(4, 7, 16))
    assert np.ptp(encoding[:, :, :8], axis=1).max() == 0  # constant along a row
    assert np.ptp(encoding[:, :, 8:], axis=0).max() == 0  # constant along a column


def test_last_cell_is_at_two_pi_whatever_the_grid_size():
    for size in (3, 30, 40):
        encoding = np.asarray(sine_position_encoding(size, size, 8))
        np.testing.assert_allclose(encoding[-1, -1, [0, 1, 4, 5]], [0, 1, 0, 1], atol=1e-5)


def test_channels_must_split_into_sin_cos_pairs_per_axis():
    with pytest.raises(ValueError, match="multiple of 4"):
        sine_position_encoding(3, 3, 30)
