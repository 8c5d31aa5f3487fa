"""A folder with corrupt files: ``artdup discover`` and ``artdup align-group`` list each skipped file with its
reason (JSON and HTML report) and process the rest."""

import html
import json

import pytest

from artdup_jax import cli
from tests.report.browser import assert_loads_cleanly
from tests.app import bad_inputs
from tests.app.bad_inputs import tool_lines

# Small ArtMiner grids (random weights): the run takes seconds; what is checked is the bookkeeping.
DISCOVER = ["--random-weights", "--exhaustive", "--min-group-images", "2", "--reference-cells", "16", "--margin",
            "2", "--scales", "20", "16", "--descriptor-cells", "16", "--iterations", "100", "--thumbnail-px", "64"]
GOOD = ("photo.png", "warped.png", "copy.jpg")
NOT_IMAGES = {"README.txt": "not an image file name", "album.jpg": "a folder, not an image file"}


@pytest.fixture(scope="module")
def corrupt_collection(tmp_path_factory):
    """Three usable images, four corrupt image files, a folder named like an image and a text file."""
    folder = tmp_path_factory.mktemp("collection")
    bad_inputs.photo(folder)
    bad_inputs.warped(folder)
    bad_inputs.Image.fromarray(bad_inputs.photograph()).save(folder / "copy.jpg", quality=90)
    reasons = bad_inputs.corrupt_files(folder)
    bad_inputs.directory_named_like_an_image(folder)
    (folder / "README.txt").write_text("catalogue notes\n")
    return folder, reasons


def _check_report(report_dir, folder, expected: dict[str, tuple[str, str]]):
    """``report.json`` and ``index.html`` list exactly ``expected`` (input -> (stage, words of the reason))."""
    report = json.loads((report_dir / "report.json").read_text())
    failures = {f["input"]: f for f in report["failures"]}
    assert set(failures) == set(expected)
    page = html.unescape((report_dir / "index.html").read_text())
    for name, (stage, words) in expected.items():
        assert failures[name]["stage"] == stage and words in failures[name]["reason"], failures[name]
        assert "\n" not in failures[name]["reason"] and str(folder) not in failures[name]["reason"]
        assert name in page and failures[name]["reason"] in page
    assert_loads_cleanly(report_dir / "index.html")
    return report


def test_discover_lists_corrupt_files_with_reasons_and_scores_the_rest(corrupt_collection, tmp_path, capsys):
    folder, reasons = corrupt_collection
    out = tmp_path / "discovered"
    assert cli.main(["discover", str(folder), "--out", str(out), *DISCOVER]) == 0
    warnings = tool_lines(capsys.readouterr().err)
    assert len(warnings) == len(reasons)
    assert all(any(line.startswith(f"warning: skipped {folder / n}: ") for line in warnings) for n in reasons)
    document = json.loads((out / "discovery.json").read_text())
    assert sorted(document["images"]) == sorted(GOOD)
    assert document["num_pairs_scored"] == 3  # every pair of the three usable images
    unreadable = {u["file"]: u["error"] for u in document["unreadable"]}
    assert set(unreadable) == set(reasons)
    assert all(words in unreadable[name] for name, words in reasons.items())
    report = _check_report(out / "report", folder, {**{n: ("discover", w) for n, w in reasons.items()},
                                            **{n: ("list", w) for n, w in NOT_IMAGES.items()}})
    assert report["sections"][0]["num_images"] == 3


def test_align_group_lists_corrupt_files_with_reasons_and_aligns_the_rest(corrupt_collection, tmp_path, capsys):
    folder, reasons = corrupt_collection
    out = tmp_path / "aligned"
    # The warped photograph as the reference: a copy identical to it would be no better than the identity.
    assert cli.main(["align-group", str(folder / "warped.png"), str(folder), "--out", str(out), "--size", "128",
                     "--iterations", "500"]) == 0
    warnings = tool_lines(capsys.readouterr().err)
    assert len(warnings) == len(reasons)  # the folder named album.jpg is listed, not tried
    group = json.loads((out / "group.json").read_text())
    assert group["aligned"] == 2
    assert (out / "photo" / "coarse.png").is_file() and (out / "copy" / "blend.png").is_file()
    _check_report(out / "report", folder, {**{n: ("align", w) for n, w in reasons.items()},
                                   **{n: ("list", w) for n, w in NOT_IMAGES.items()}})
