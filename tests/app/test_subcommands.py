"""Every ``artdup`` subcommand on small data (``demo``: tests/app/test_demo.py; ``align-group`` and ``discover`` on a
folder with corrupt files: test_corrupt_folder.py), and ``--help`` of each with an example."""

import json
import subprocess
import sys

import pytest

from artdup_jax import cli
from tests.report.browser import assert_loads_cleanly
from tests.app import bad_inputs
from tests.app.bad_inputs import tool_lines


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_help_of_every_command_explains_it_with_an_example(command, capsys):
    if command == "train":  # absl's help runs in a child process: read it from one
        result = subprocess.run([sys.executable, "-m", "artdup_jax.cli", "train", "--help"], capture_output=True,
                                text=True, timeout=120)
        code, text = result.returncode, result.stdout
    else:
        try:
            code = cli.main([command, "--help"])
        except SystemExit as stop:
            code = stop.code
        text = capsys.readouterr().out
    assert code == 0
    assert f"example: artdup {command}" in text.replace("\n", " ")
    assert "--" in text.split("example:")[1]  # and the options follow


def test_top_level_help_names_every_command():
    result = subprocess.run([sys.executable, "-m", "artdup_jax.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert all(command in result.stdout for command in cli.COMMANDS)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    return bad_inputs.photo(folder), bad_inputs.warped(folder)


def test_align_writes_the_aligned_images_and_a_report(pair, tmp_path, capsys):
    out = tmp_path / "aligned"
    assert cli.main(["align", str(pair[0]), str(pair[1]), "--out", str(out), "--size", "128",
                     "--iterations", "500"]) == 0
    assert tool_lines(capsys.readouterr().err) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["blend_error_coarse"] < 0.05 and (out / "blink.gif").is_file()
    report = json.loads((out / "report" / "report.json").read_text())
    assert [s["kind"] for s in report["sections"]] == ["alignment"] and report["failures"] == []
    assert_loads_cleanly(out / "report" / "index.html")


def test_eval_lists_the_protocols_and_reaches_one(capsys):
    listing = subprocess.run([sys.executable, "-m", "artdup_jax.cli", "eval", "--help"], capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0
    assert all(name in listing.stdout for name in ("hpatches", "kitti", "megadepth", "yfcc", "brueghel", "ltll",
                                                   "oxford", "internet_coseg", "place_rerank"))
    protocol = subprocess.run([sys.executable, "-m", "artdup_jax.cli", "eval", "hpatches", "--help"],
                              capture_output=True, text=True, timeout=120)
    assert protocol.returncode == 0 and "--coarse-checkpoint" in protocol.stdout
    unknown = subprocess.run([sys.executable, "-m", "artdup_jax.cli", "eval", "nonesuch"], capture_output=True,
                             text=True, timeout=120)
    assert unknown.returncode == 2 and "unknown protocol 'nonesuch'" in unknown.stderr


def test_detect_ranks_the_folder_and_lists_the_skipped_files(pair, tmp_path, capsys):
    folder = tmp_path / "collection"
    folder.mkdir()
    bad_inputs.warped(folder)
    bad_inputs.grayscale(folder)
    bad_inputs.truncated_jpeg(folder)
    result = tmp_path / "detections.json"
    assert cli.main(["detect", str(pair[0]), str(folder), "--box", "30", "10", "90", "70", "--random-weights",
                     "--scales", "16", "12", "--json", str(result), "--out", str(tmp_path / "out"), "--top", "2"]) == 0
    lines = tool_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"warning: skipping {folder / 'truncated.jpg'}: ")
    document = json.loads(result.read_text())
    assert {d["file"] for d in document["detections"]} == {"warped.png", "grayscale.png"}
    assert all(0 <= d["box"][0] < d["box"][2] <= 128 and 0 <= d["box"][1] < d["box"][3] <= 96
               for d in document["detections"])
    assert [s["file"] for s in document["skipped"]] == ["truncated.jpg"]
    assert "truncated" in document["skipped"][0]["reason"]
    assert json.loads((tmp_path / "out" / "detections.json").read_text()) == document
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    shown = report["sections"][0]["groups"][0]["images"]
    assert shown[0]["boxes"] == [[30, 10, 90, 70]] and len({i["name"] for i in shown}) == len(shown)
    assert sum(len(i["boxes"]) for i in shown[1:]) == 2  # --top 2
    assert [(f["input"], f["stage"]) for f in report["failures"]] == [("truncated.jpg", "detect")]
    assert_loads_cleanly(tmp_path / "out" / "report" / "index.html")
    # The collection's maps persisted in OUT/cache: a re-run computes none and ranks the same.
    again = tmp_path / "again.json"
    assert cli.main(["detect", str(pair[0]), str(folder), "--box", "30", "10", "90", "70", "--random-weights",
                     "--scales", "16", "12", "--json", str(again), "--out", str(tmp_path / "out"), "--top", "2"]) == 0
    assert "feature maps: 4 read from" in capsys.readouterr().out  # 2 readable images x 2 scales, 0 computed
    assert json.loads(again.read_text())["detections"] == document["detections"]


def test_convert_writes_variables_that_the_detector_loads(resnet18_checkpoint, tmp_path, capsys):
    from artdup_jax.artminer import load_weights

    out = tmp_path / "artminer"
    assert cli.main(["convert", "artminer", str(resnet18_checkpoint), str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    variables = load_weights(out)
    assert variables["params"]["conv1"]["kernel"].shape == (7, 7, 3, 64)


def test_train_passthrough_trains_and_writes_its_report(tmp_path):
    workdir = tmp_path / "train"
    result = subprocess.run([sys.executable, "-m", "artdup_jax.cli", "train", "--config",
                             "configs/dense_contrast.py:tiny", "--workdir", str(workdir), "--config.total_steps=2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((workdir / "report.json").read_text())["steps"] == 2
