"""Learning-rate schedules from ``config.optimizer`` (artdup_jax/training/optimizers.py)."""

import ml_collections
import numpy as np
import pytest

from artdup_jax.training.optimizers import learning_rate_schedule


def _config(**optimizer) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.total_steps = 100
    config.optimizer = dict(name="adam", **optimizer)
    return config


def test_step_schedule_warms_up_linearly_then_decays_at_absolute_steps():
    schedule = learning_rate_schedule(
        _config(learning_rate=2e-4, schedule="step", warmup_steps=10, decay_steps=50, decay=0.05))
    rates = np.array([float(schedule(step)) for step in range(120)])
    np.testing.assert_allclose(rates[:10], 2e-4 * np.arange(10) / 10, rtol=1e-6)
    np.testing.assert_allclose(rates[10:50], 2e-4, rtol=1e-6)
    np.testing.assert_allclose(rates[50:100], 2e-4 * 0.05, rtol=1e-5)
    np.testing.assert_allclose(rates[100:], 2e-4 * 0.05**2, rtol=1e-5)


def test_step_schedule_without_warmup_starts_at_full_rate():
    schedule = learning_rate_schedule(_config(learning_rate=1e-3, schedule="step", decay_steps=5, decay=0.5))
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(5)) == pytest.approx(5e-4)


def test_segswap_stage_one_schedule_matches_the_spec():
    """The release: warm-up over 1,000 steps, 2e-4 through epoch 50 (9,000 steps each), then 1e-5."""
    from configs.segswap import get_config

    schedule = learning_rate_schedule(get_config("coco"))
    assert float(schedule(0)) == 0.0
    assert float(schedule(500)) == pytest.approx(1e-4)
    assert float(schedule(1_000)) == pytest.approx(2e-4)
    assert float(schedule(1_000 + 50 * 9_000 - 1)) == pytest.approx(2e-4)
    assert float(schedule(1_000 + 50 * 9_000)) == pytest.approx(1e-5)
    assert float(schedule(1_000 + 99 * 9_000 - 1)) == pytest.approx(1e-5)
