"""The artdup command dispatches to the library's entry points."""

import subprocess
import sys

import numpy as np
from PIL import Image

from artdup_jax import cli


def test_help_lists_every_subcommand():
    result = subprocess.run([sys.executable, "-m", "artdup_jax.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("align", "align-group", "convert", "train", "eval"):
        assert command in result.stdout


def test_align_of_a_missing_file_fails_with_a_one_line_error(tmp_path, capsys):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "target.png")
    code = cli.main(["align", str(tmp_path / "missing.png"), str(tmp_path / "target.png"), "--out", str(tmp_path / "o")])
    error = capsys.readouterr().err.strip()
    assert code == 1 and "missing.png" in error and len(error.splitlines()) == 1


def test_align_of_images_with_nothing_in_common_says_so(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), np.uint8)).save(tmp_path / name)
    code = cli.main(["align", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(tmp_path / "o"),
                     "--size", "96"])
    assert code == 1 and "beats the identity" in capsys.readouterr().err  # reported as a failure, one line
