"""The ``artdup index`` command lines (``cli.index_command.run``): build, info, discover and detect with
``--index``, progress on stderr unless ``--quiet``, clear one-line errors."""

import json

import pytest

from artdup_jax.cli import index_command
from tests.index.conftest import same_discovery

GRID = ["--reference-cells", "12", "--margin", "2", "--scales", "16", "12", "--descriptor-cells", "12",
        "--no-saliency"]
SCORING = ["--top-k", "4", "--threshold", "0.15", "--iterations", "50", "--pairs-per-batch", "8"]


@pytest.fixture(scope="module")
def built(collection, tmp_path_factory):
    index = tmp_path_factory.mktemp("cli") / "index"
    assert index_command.run("index", ["build", str(collection), "--index", str(index), "--random-weights",
                                       "--quiet", *GRID]) == 0
    return index


def test_index_forms_of_discover_and_detect_are_recognised():
    assert index_command.uses_index("discover", ["--index", "DIR"])
    assert index_command.uses_index("detect", ["a.png", "--index=DIR", "--box", "0", "0", "1", "1"])
    assert not index_command.uses_index("discover", ["folder/"])


def test_info_lists_images_settings_and_disk(built, capsys):
    assert index_command.run("index", ["info", str(built)]) == 0
    out = capsys.readouterr().out
    assert "8 image(s) in 1 shard(s)" in out and "random weights (seed 0)" in out and "scales=[16, 12]" in out


def test_discover_with_index_writes_the_discovery_document_and_shows_progress(built, reference_run, tmp_path,
                                                                              capsys):
    out = tmp_path / "out"
    assert index_command.run("discover", ["--index", str(built), "--out", str(out), "--no-report", *SCORING]) == 0
    captured = capsys.readouterr()
    assert "verification" in captured.err and "100%" in captured.err  # progress bars, on stderr
    assert "8 images" in captured.out
    assert same_discovery(json.loads((out / "discovery.json").read_text()), reference_run.document)
    assert index_command.run("discover", ["--index", str(built), "--out", str(out), "--no-report", "--quiet",
                                          *SCORING]) == 0
    assert capsys.readouterr().err == ""


def test_detect_with_index_prints_ranked_detections(built, collection, capsys):
    query = json.loads((collection / "annotations.json").read_text())
    name, box = next(iter(query.values()))[0]["query"]
    assert index_command.run("detect", [str(collection / name), "--index", str(built), "--box",
                                        *map(str, box), "--random-weights", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and name not in "".join(lines)  # every other image, the query's own skipped


def test_other_weights_are_one_error_line(built, collection, capsys):
    code = index_command.run("index", ["add", str(built), str(collection), "--random-weights", "--seed", "3",
                                       "--quiet"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "other weights" in err[0]


def test_a_folder_without_an_index_is_one_error_line(tmp_path, capsys):
    assert index_command.run("index", ["info", str(tmp_path)]) == 1
    assert "not an artdup index" in capsys.readouterr().err
