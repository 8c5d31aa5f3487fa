"""The HTML report: every section from small synthetic inputs, opened in headless Chromium; atomic replacement."""

import json

import numpy as np
import pytest

from artdup_jax.report import (
    AlignmentSection,
    DiscoveredGroup,
    DiscoveredImage,
    DiscoverySection,
    Failure,
    Figure,
    GroupAlignmentSection,
    GroupMember,
    Report,
    ReportDirectory,
)
from artdup_jax.report import plots
from artdup_jax.report.directory import check_relative
from tests.report.browser import assert_loads_cleanly, chromium

HOSTILE = '<script>document.title="pwned"</script> & "quotes"'


def _picture(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.random((height // 8, width // 8, 3), np.float32), 8, 0), 8, 1)


def _build(out: ReportDirectory) -> Report:
    target, aligned = _picture(0), _picture(1)
    figures = [Figure(out.save_image("pair/target.png", target), "target"),
               Figure(out.save_image("pair/coarse.png", aligned), "coarse"),
               Figure(out.save_image("pair/blend.png", 0.5 * (target + aligned)), "blend"),
               Figure(out.save_gif("pair/blink.gif", [target, aligned]), "blink"),
               Figure(out.save_image("pair/matchability.png", np.ones((48, 64), np.float32)), "matchability")]
    pair = AlignmentSection("a onto b", source="a.png", target="b.png", figures=figures,
                            metrics={"mean matchability": 1.0, "fine stage": False})
    members = [GroupMember(f"copy {k}", Figure(out.save_image(f"group/{k}.jpg", _picture(k + 2)), f"copy {k}"),
                           {"error after": 0.1 * k}) for k in range(3)]
    errors = plots.bar_chart(out.path("group/errors.png"), [m.name for m in members],
                             {"before": [0.3, 0.2, None], "after": [0.1, 0.1, 0.2]}, title="errors", ylabel="error")
    group = GroupAlignmentSection("group", reference="b.png",
                                  average_before=Figure(out.save_image("group/before.png", target), "before"),
                                  average_after=Figure(out.save_image("group/after.png", aligned), "after"),
                                  members=members, plots=[Figure(out.relative(errors), "per-image error")])
    images = [DiscoveredImage(name, Figure(out.save_image(f"found/{k}.jpg", _picture(k + 5, 96, 128),
                                                          max_side=64), name), width=128, height=96,
                              boxes=[[10, 20, 60, 80], [70, 5, 120, 40]])
              for k, name in enumerate(["x.png", HOSTILE])]
    scores = plots.histogram(out.path("found/scores.png"), np.random.default_rng(0).random(50), threshold=0.5,
                             title="scores", xlabel="score")
    discovery = DiscoverySection("discovery", method="test method", num_images=2, num_pairs_scored=1,
                                 groups=[DiscoveredGroup(0, images, [{"a": "x.png", "b": HOSTILE, "score": 0.9}])],
                                 plots=[Figure(out.relative(scores), "scores")])
    return Report(title=f"report {HOSTILE}", intro="first paragraph\n\nsecond paragraph",
                  sections=[group, pair, discovery],
                  failures=[Failure("empty.png", "read", "empty.png: empty file"),
                            Failure(HOSTILE, "align", f"no homography found {HOSTILE}")],
                  settings={"size": 64})


@pytest.fixture(scope="module")
def report_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report") / "out"
    with ReportDirectory(folder) as out:
        out.commit(_build(out))
    return folder


def test_every_image_loads_in_chromium_without_script_errors(report_folder):
    outcome = assert_loads_cleanly(report_folder / "index.html")
    assert outcome["images"] == 5 + 2 + 3 + 1 + 2 + 1  # pair, averages, members, error plot, found, histogram


def test_text_is_escaped(report_folder):
    page = (report_folder / "index.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page
    dom = chromium("--dump-dom", (report_folder / "index.html").as_uri()).stdout
    assert "pwned</title>" not in dom and "<title>report &lt;script&gt;" in dom


def test_report_json_lists_sections_and_failures_with_reasons(report_folder):
    document = json.loads((report_folder / "report.json").read_text())
    assert document["generator"] == "artdup_jax.report"
    assert [s["kind"] for s in document["sections"]] == ["group_alignment", "alignment", "discovery"]
    assert document["failures"][0] == {"input": "empty.png", "stage": "read", "reason": "empty.png: empty file"}
    assert document["sections"][2]["groups"][0]["images"][0]["boxes"] == [[10, 20, 60, 80], [70, 5, 120, 40]]


def test_boxes_are_drawn_in_the_original_image_frame(report_folder):
    page = (report_folder / "index.html").read_text()
    assert page.count('<svg viewBox="0 0 128 96"') == 2
    assert '<rect x="10.0" y="20.0" width="50.0" height="60.0"' in page


def test_an_interrupted_report_leaves_the_previous_one_untouched(report_folder):
    before = (report_folder / "index.html").read_text()
    with pytest.raises(RuntimeError):
        with ReportDirectory(report_folder) as out:
            out.save_image("half.png", _picture(9))
            raise RuntimeError("interrupted")
    assert (report_folder / "index.html").read_text() == before and not (report_folder / "half.png").exists()
    assert [p.name for p in report_folder.parent.iterdir()] == ["out"]  # no staging folder left behind


def test_a_new_report_replaces_an_earlier_one_and_keeps_other_folders_aside(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    for title in ("first", "second"):
        with ReportDirectory(folder) as out:
            out.commit(Report(title))
    assert json.loads((folder / "report.json").read_text())["title"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out")[0].startswith("out.previous-")
    kept = next(p for p in tmp_path.iterdir() if p.name.startswith("out.previous-"))
    assert (kept / "notes.txt").read_text() == "mine" and len(list(tmp_path.iterdir())) == 2


def test_a_report_showing_a_missing_file_is_refused(tmp_path):
    with ReportDirectory(tmp_path / "out") as out:
        section = AlignmentSection("x", "a", "b", figures=[Figure("nowhere.png")])
        with pytest.raises(ValueError, match="nowhere.png"):
            out.commit(Report("x", sections=[section]))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["../up.png", "/abs.png", "https://example.com/x.png", "a\\b.png", ""])
def test_paths_leaving_the_report_are_refused(path):
    with pytest.raises(ValueError):
        check_relative(path)
