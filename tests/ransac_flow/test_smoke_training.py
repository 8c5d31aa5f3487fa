"""The RANSAC-Flow smoke training really trains: on held-out synthetic pairs with known flow, the learned
fine flow reconstructs the target better and lands closer to the true flow than the identity does."""

import json

from artdup_jax.training import loop
from configs.ransac_flow import get_config


def test_smoke_training_beats_the_identity_flow(tmp_path):
    config = get_config("smoke")
    report = loop.train(config, str(tmp_path))
    before, after = report["initial_eval_metrics"], report["final_eval_metrics"]
    assert after["reconstruction_loss"] < before["reconstruction_loss"] - 0.005
    assert after["epe"] < 0.97 * after["identity_epe"]
    assert json.loads((tmp_path / "report.json").read_text())["steps"] == config.total_steps
