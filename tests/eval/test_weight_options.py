"""Every evaluation that runs a network takes exactly one of --checkpoint and --random-weights, and says so
before any work when given neither or both."""
import importlib

import pytest

# module -> the other arguments its parser requires
REQUIRED = {
    "artdup_jax.cli.parsers:discover_parser": ["folder"],
    "eval.brueghel": ["--images", "imgs"],
    "eval.internet_coseg": ["--root", "root"],
    "eval.place_rerank": ["lists.json"],
    "eval.ltll": ["--images", "imgs"],
    "eval.oxford": ["--images", "imgs", "--gt-dir", "gt"],
}


@pytest.mark.parametrize("module", sorted(REQUIRED))
def test_weights_are_one_of_checkpoint_or_random(module, capsys):
    module, _, function = module.partition(":")
    parser = getattr(importlib.import_module(module), function or "build_parser")()
    required = REQUIRED[module if not function else f"{module}:{function}"]
    assert parser.parse_args([*required, "--random-weights"]).checkpoint is None
    assert parser.parse_args([*required, "--checkpoint", "w.pth"]).checkpoint == "w.pth"
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(required)
    assert stop.value.code == 2
    error = capsys.readouterr().err  # artdup discover also takes released weights by name (--weights)
    assert "one of the arguments --checkpoint" in error and "--random-weights is required" in error
    with pytest.raises(SystemExit):
        parser.parse_args([*required, "--checkpoint", "w.pth", "--random-weights"])
    assert "not allowed with argument" in capsys.readouterr().err
