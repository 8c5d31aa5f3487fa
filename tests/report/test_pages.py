"""A discovery with hundreds of groups: pages of bounded size, largest groups first, links that resolve."""

import html
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artdup_jax.report import Report, ReportDirectory, discovery_section
from artdup_jax.report.pages import IMAGES_PER_GROUP
from tests.report import browser

NUM_GROUPS = 500
GIANT = 260  # images of one group, more than a group shows
MAX_PAGE_BYTES = 2 * 1024 * 1024


def _document(folder: Path, num_groups: int) -> dict:
    """Groups of 2 to 6 images (one of ``GIANT``), scores that tie on purpose, tiny JPEG files."""
    rng = np.random.default_rng(0)
    shared = folder / "_pixels.jpg"
    if not shared.exists():
        Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(shared)
    groups = []
    for g in range(num_groups):
        size = GIANT if g == 7 else 2 + (g * 7) % 5
        names = [f"scans/box {g:03d}/folio_{k:03d}_with_a_rather_long_descriptive_title.jpg" for k in range(size)]
        for name in names:
            if not (folder / name).exists():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                os.link(shared, folder / name)
        pairs = [{"a": names[k], "b": names[k + 1], "score": round(0.2 + 0.1 * ((g * 3 + k) % 7), 3),
                  "box_a": [4.0, 4.0, 30.0, 20.0], "box_b": [10.0, 8.0, 40.0, 30.0]} for k in range(size - 1)]
        pairs.sort(key=lambda p: -p["score"])
        groups.append({"id": g, "pairs": pairs, "images": [
            {"file": n, "width": 64, "height": 48, "regions": [[4.0, 4.0, 30.0, 20.0]]} for n in names]})
    return {"num_images": sum(len(g["images"]) for g in groups), "num_pairs_scored": 12345, "groups": groups}


def _write(folder: Path, out_dir: Path, num_groups: int) -> dict:
    document = _document(folder, num_groups)
    with ReportDirectory(out_dir) as out:
        section, failures = discovery_section(out, document, folder, method="synthetic", thumbnail_px=160,
                                              scores=np.linspace(0, 1, 50), threshold=0.5)
        out.commit(Report("paged", sections=[section], failures=failures))
    return document


@pytest.fixture(scope="module")
def paged(tmp_path_factory):
    folder, out_dir = tmp_path_factory.mktemp("collection"), tmp_path_factory.mktemp("report") / "out"
    return _write(folder, out_dir, NUM_GROUPS), out_dir


def _pages(out_dir: Path) -> list[Path]:
    return sorted(out_dir.glob("groups-*.html"))


def test_groups_are_paged_largest_first_then_best_score(paged):
    document, out_dir = paged
    pages = _pages(out_dir)
    assert len(pages) > 5 and pages[0].name == "groups-001.html"
    shown = [int(i) for p in pages for i in re.findall(r"<h3 id='group-(\d+)'", p.read_text())]

    def key(group):
        return -len(group["images"]), -max(p["score"] for p in group["pairs"]), group["id"]

    assert shown == [g["id"] for g in sorted(document["groups"], key=key)]
    assert shown[0] == 7  # the giant group
    assert all(len(re.findall(r"<h3 id=", p.read_text())) <= 40 for p in pages)


def test_every_page_is_small_and_shows_thumbnails_from_files(paged):
    document, out_dir = paged
    sizes = {p.name: p.stat().st_size for p in out_dir.glob("*.html")}
    assert max(sizes.values()) < MAX_PAGE_BYTES, sizes
    thumbnails = list((out_dir / "discovery" / "thumbs").glob("*.jpg"))
    assert len(thumbnails) == document["num_images"]  # one file per image, written once
    for path in thumbnails[:20]:
        with Image.open(path) as image:
            assert max(image.size) <= 160
    assert not any("data:" in (out_dir / name).read_text() for name in sizes)


def test_a_large_group_shows_part_of_its_images_and_counts_the_rest(paged):
    _, out_dir = paged
    first = (out_dir / "groups-001.html").read_text()
    giant = first[first.index("<h3 id='group-7'"):]
    giant = giant[:giant.find("<h3 id=", 10) if "<h3 id=" in giant[10:] else len(giant)]
    assert giant.count("<img ") == IMAGES_PER_GROUP
    assert f"{GIANT - IMAGES_PER_GROUP} more image(s) in groups.csv" in giant


def test_links_and_images_resolve_and_pages_chain(paged):
    _, out_dir = paged
    pages = _pages(out_dir)
    for page in [out_dir / "index.html", out_dir / "pairs.html", *pages]:
        text = page.read_text()
        for link in re.findall(r"(?:href|src)=[\"']([^\"'#]+)(?:#([^\"']*))?[\"']", text):
            target = out_dir / html.unescape(link[0]).replace("%20", " ")
            assert target.is_file(), (page.name, link)
            if link[1]:
                assert f"id='{link[1]}'" in target.read_text(), (page.name, link)
    for k, page in enumerate(pages, start=1):
        links = set(re.findall(r"href='(groups-\d+\.html)'", page.read_text()))
        assert links == {f"groups-{n:03d}.html" for n in (k - 1, k + 1) if 1 <= n <= len(pages)}, page.name
    index = (out_dir / "index.html").read_text()
    assert all(f"href='{p.name}'" in index for p in pages) and "href='pairs.html'" in index


def test_best_pairs_page_lists_the_best_pairs_first(paged):
    document, out_dir = paged
    text = (out_dir / "pairs.html").read_text()
    scores = [float(s) for s in re.findall(r"<tr><td class='num'>([0-9.]+)</td>", text)]
    every = sorted((p["score"] for g in document["groups"] for p in g["pairs"]), reverse=True)
    assert len(scores) == 100 and scores == every[:100]


def test_a_report_written_twice_has_the_same_files(tmp_path):
    folder = tmp_path / "collection"
    folder.mkdir()
    contents = []
    for name in ("one", "two"):
        _write(folder, tmp_path / name, 60)
        contents.append({p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
                         for p in (tmp_path / name).rglob("*") if p.is_file() and p.name not in
                         ("index.html", "report.json")})  # these two say when they were written
    assert contents[0] == contents[1] and "groups-002.html" in contents[0]


def test_a_small_discovery_stays_on_the_index_page(tmp_path):
    folder = tmp_path / "collection"
    folder.mkdir()
    _write(folder, tmp_path / "out", 3)
    assert not _pages(tmp_path / "out") and not (tmp_path / "out" / "pairs.html").exists()
    assert len(re.findall(r"<h3 id='group-", (tmp_path / "out" / "index.html").read_text())) == 3


def test_the_pages_load_in_headless_chromium(paged):
    if not (os.path.isfile(browser.CHROMIUM) and os.access(browser.CHROMIUM, os.X_OK)):
        pytest.skip(f"headless Chromium ({browser.CHROMIUM}) is not installed: apt-get install -y chromium")
    _, out_dir = paged
    for name in ("index.html", "groups-001.html", "groups-002.html", "pairs.html"):
        outcome = browser.assert_loads_cleanly(out_dir / name)
        assert outcome["images"] > 0


def test_a_thumbnail_is_read_at_reduced_scale_with_its_exif_orientation(tmp_path):
    rng = np.random.default_rng(1)
    pixels = np.repeat(np.repeat((rng.random((5, 10, 3)) * 255).astype(np.uint8), 120, 0), 120, 1)  # 600 x 1200
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: a portrait
    Image.fromarray(pixels).save(tmp_path / "scan.jpg", exif=exif, quality=95)
    with ReportDirectory(tmp_path / "out") as out:
        relative = out.include(tmp_path / "scan.jpg", "thumbs/scan.jpg", max_side=160)
        with Image.open(out.path(relative)) as thumbnail:
            shown = np.asarray(thumbnail.convert("RGB"), np.float32) / 255
    expected = np.asarray(Image.fromarray(np.rot90(pixels, -1)).resize((80, 160), Image.Resampling.BOX),
                          np.float32) / 255
    assert shown.shape == (160, 80, 3) and np.abs(shown - expected).mean() < 0.03
