"""Inference, geometry and conversion must import and run without TensorFlow (GPU images often lack it)."""

import subprocess
import sys

_PROGRAM = """
import sys
sys.modules["tensorflow"] = None  # any 'import tensorflow' now raises ImportError
import jax.numpy as jnp
import artdup_jax.cli, artdup_jax.convert, artdup_jax.geometry.sampling, artdup_jax.geometry.homography
import artdup_jax.nn, artdup_jax.training.loop, artdup_jax.dense_contrast.task
from artdup_jax.nn import resnet18
variables = resnet18().init(__import__("jax").random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
print("ok", "tensorflow" in sys.modules and sys.modules["tensorflow"] is not None)
"""


def test_library_imports_and_runs_without_tensorflow():
    result = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ok", "False"]
