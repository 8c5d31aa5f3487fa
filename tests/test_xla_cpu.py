"""``artdup_jax.xla_cpu``: the convolution flag is added only where it can take effect and nobody chose otherwise."""

import os

import pytest

from artdup_jax import xla_cpu


# A dict ``environ`` stands for a child process's environment: whether this process's backend runs is irrelevant.


def test_flag_is_appended_to_the_users_flags():
    environ = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert xla_cpu.apply_training_defaults(environ)
    assert environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", xla_cpu.CONVOLUTION_FLAG]
    environ = {}
    assert xla_cpu.apply_training_defaults(environ) and environ["XLA_FLAGS"] == xla_cpu.CONVOLUTION_FLAG


@pytest.mark.parametrize("environ", [
    {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=+ELTWISE"},  # the user's own choice wins
    {"ARTDUP_XLA_CPU_DEFAULTS": "0"},  # opt-out
])
def test_users_choice_is_left_alone(environ):
    before = dict(environ)
    assert not xla_cpu.apply_training_defaults(environ)
    assert environ == before


def test_nothing_is_added_once_this_process_computes_or_on_an_older_jaxlib(monkeypatch):
    import jax.numpy as jnp

    float(jnp.ones(()))  # a backend runs in this process now: too late for it, still fine for a child's
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    assert not xla_cpu.apply_training_defaults()
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=1"
    child = {}
    assert xla_cpu.apply_training_defaults(child) and child["XLA_FLAGS"] == xla_cpu.CONVOLUTION_FLAG
    monkeypatch.setattr(xla_cpu, "_jaxlib_version", lambda: (0, 11))
    environ = {}
    assert not xla_cpu.apply_training_defaults(environ) and environ == {}


def test_the_training_entry_point_sets_the_flag_before_jax_starts(tmp_path):
    import subprocess
    import sys

    code = ("import os, train.main, jax.numpy as jnp; float(jnp.ones(())); "
            "print(os.environ.get('XLA_FLAGS', ''))")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert xla_cpu.CONVOLUTION_FLAG in out.stdout.split()
