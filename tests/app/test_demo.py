"""``artdup demo --quick`` end to end, and ``artdup align-group`` on a folder with corrupt files."""

import io
import json

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from artdup_jax import cli
from artdup_jax.data.demo_collection import QUICK_COPIES
from tests.report.browser import assert_loads_cleanly


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_demo_writes_the_report_and_its_json(demo_report):
    document = json.loads((demo_report / "report.json").read_text())
    kinds = [s["kind"] for s in document["sections"]]
    assert kinds[:2] == ["group_alignment", "discovery"] and set(kinds[2:]) == {"alignment"}
    group = document["sections"][0]
    assert group["members"] and group["average_after"] is not None
    discovery = document["sections"][1]
    assert "SIFT + MAGSAC++" in discovery["method"] and discovery["groups"]
    assert any(image["boxes"] for g in discovery["groups"] for image in g["images"])


def test_quick_demo_verifies_every_copy_with_the_weightless_default_and_shows_its_method(demo_report):
    document = json.loads((demo_report / "report.json").read_text())
    members = document["sections"][0]["members"]
    assert sorted(m["name"] for m in members) == sorted(name.rsplit(".", 1)[0] for name in QUICK_COPIES)
    assert not [f for f in document["failures"] if f["stage"] == "align"]
    for member in members:
        summary = json.loads((demo_report / "alignment" / member["name"] / "summary.json").read_text())
        assert summary["verified"] and summary["coarse_stage"] == "classical"
        assert summary["verification_score"] >= summary["identity_score"] + 0.05
        assert member["metrics"]["method"] == f"classical: {summary['method']}"
        assert member["metrics"]["score (identity)"] == \
            f"{summary['verification_score']:.3f} ({summary['identity_score']:.3f})"


def test_quick_demo_lists_the_inputs_that_failed_with_their_reasons(demo_report):
    failures = json.loads((demo_report / "report.json").read_text())["failures"]
    broken = [f for f in failures if f["input"] == "broken_truncated_scan.jpg"]
    assert broken and "truncated" in broken[0]["reason"] and str(demo_report.parent) not in broken[0]["reason"]
    assert all(f["reason"] and "\n" not in f["reason"] for f in failures)
    assert "broken_truncated_scan.jpg" in (demo_report / "index.html").read_text()


def test_quick_demo_report_loads_in_chromium(demo_report):
    assert_loads_cleanly(demo_report / "index.html")


@pytest.fixture(scope="module")
def corrupt_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrupt")
    photo = skimage.data.astronaut()[::4, ::4]
    h, w = photo.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + np.float32([[6, 3], [-5, 7], [-9, -6], [3, -2]])
    # The reference is the warped photograph: a copy identical to it would be no better than the identity.
    Image.fromarray(cv2.warpPerspective(photo, cv2.getPerspectiveTransform(corners, moved), (w, h))).save(
        folder / "reference.png")
    Image.fromarray(photo).save(folder / "photo.png")
    Image.fromarray(photo).save(folder / "copy.jpg", quality=90)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("a text file, not an image\n")
    jpeg = io.BytesIO()
    Image.fromarray(photo).save(jpeg, format="JPEG")
    (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 3])
    return folder


def test_align_group_lists_corrupt_files_with_reasons_and_aligns_the_rest(corrupt_folder, tmp_path):
    out = tmp_path / "aligned"
    assert cli.main(["align-group", str(corrupt_folder / "reference.png"), str(corrupt_folder), "--out", str(out),
                     "--size", "128", "--iterations", "1000"]) == 0
    group = json.loads((out / "group.json").read_text())
    assert group["aligned"] == 2
    assert (out / "photo" / "coarse.png").is_file() and (out / "copy" / "blend.png").is_file()
    reasons = {name.rsplit("/", 1)[-1]: reason for name, reason in group["failed"].items()}
    assert set(reasons) == {"empty.png", "notes.png", "truncated.jpg"}
    assert "empty file" in reasons["empty.png"] and "not a readable image" in reasons["notes.png"]
    assert "truncated" in reasons["truncated.jpg"]
    report = json.loads((out / "report" / "report.json").read_text())
    assert {f["input"]: f["stage"] for f in report["failures"]} == dict.fromkeys(reasons, "align")
    assert all(f["reason"].startswith(f["input"] + ": ") for f in report["failures"])
    assert sorted(m["name"] for m in report["sections"][0]["members"]) == ["copy", "photo"]
    assert_loads_cleanly(out / "report" / "index.html")


@pytest.mark.parametrize("command, usage", [("discover", "artdup discover"), ("detect", "artdup detect")])
def test_discover_and_detect_reach_their_entry_points(command, usage, capsys):
    try:
        code = cli.main([command, "--help"])
    except SystemExit as stop:  # argparse's own help exit
        code = stop.code
    assert code == 0 and usage in capsys.readouterr().out
