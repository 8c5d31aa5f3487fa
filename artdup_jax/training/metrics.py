"""Metric writing: one JSON object per line (``metrics.jsonl``) and TensorBoard event files.

Only process 0 writes. Values are converted to Python floats at the loop's edge, never inside the step.
"""

from __future__ import annotations

import json
import os

import numpy as np


class MetricWriter:
    def __init__(self, workdir: str, *, enabled: bool = True):
        self.enabled = enabled
        self._jsonl = None
        self._tensorboard = None
        if not enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", buffering=1)
        from tensorboardX import SummaryWriter  # pure Python; no TensorFlow needed

        self._tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def write(self, step: int, metrics: dict, *, split: str = "train") -> None:
        if not self.enabled:
            return
        scalars = {k: float(np.asarray(v)) for k, v in metrics.items()}
        self._jsonl.write(json.dumps({"step": int(step), "split": split, **scalars}) + "\n")
        for name, value in scalars.items():
            self._tensorboard.add_scalar(f"{split}/{name}", value, int(step))

    def close(self) -> None:
        if self._jsonl:
            self._jsonl.close()
            self._tensorboard.close()


def read_metrics(workdir: str, split: str = "train") -> list[dict]:
    """All records of one split, in file order (a resumed run appends; later records win per step)."""
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if r["split"] == split]
