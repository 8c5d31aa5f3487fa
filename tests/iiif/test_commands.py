"""IIIF input and Web Annotation output of the commands: align-group on a manifest URL (a canvas as its
reference, images fetched at the alignment size, the failing canvas in group.json and the report), query
canvases and their boxes in canvas units, detect's need for --out, and annotations of a local folder.
(discover and detect on IIIF, viewed in Mirador: test_mirador.py.)"""

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from artdup_jax.app.annotations_output import discovery_annotation_files
from artdup_jax.app.discover import DiscoveryRun
from artdup_jax.app.iiif_input import collection_folder, file_box, single_image
from artdup_jax.cli import main
from artdup_jax.data.iiif.fetch import FetchSettings
from artdup_jax.data.iiif.source import IIIFInputError
from artdup_jax.report.annotations import Provenance
from tests.iiif.layout import LayoutImage, write_layout
from tests.iiif.server import Fault, LoopbackServer


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A photograph (c1), the same warped by a homography, on a canvas twice its size (c2), and c3 (404)."""
    source = skimage.data.astronaut()
    h, w = source.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + np.float32([[20, 10], [-15, 25], [-30, -20], [10, -5]])
    warped = cv2.warpPerspective(source, cv2.getPerspectiveTransform(corners, moved), (w, h))
    root = tmp_path_factory.mktemp("site")
    server = LoopbackServer(root, [Fault("/images/c3/", status=404)])
    write_layout(root, server.url, [LayoutImage("c1", "Folio 1", source),
                                    LayoutImage("c2", "Folio 2", warped, canvas_size=(2 * w, 2 * h)),
                                    LayoutImage("c3", "Folio 3", source)])
    with server:
        yield server.url


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTDUP_IIIF_CACHE", str(tmp_path / "cache"))
    return FetchSettings(workers=2, read_timeout=2.0, retries=0, cache_dir=str(tmp_path / "cache"))


def test_align_group_on_a_manifest_fetches_at_the_alignment_size_and_lists_the_failed_canvas(site, cache,
                                                                                             tmp_path, capsys):
    out = tmp_path / "group"
    code = main(["align-group", "Folio 1", f"{site}/manifest.json", "--out", str(out), "--size", "256",
                 "--iiif-retries", "0", "--iiif-timeout", "2"])
    assert code == 0
    assert capsys.readouterr().err.startswith(f"warning: IIIF: skipping Folio 3 ({site}/canvas/c3): HTTP 404")
    # 512 x 512 images: the listed level-0 size reaching 256 px is 256 x 256
    fetched = sorted(p for p in (out / "iiif").iterdir() if not p.name.startswith("."))
    assert [(p.name, Image.open(p).size) for p in fetched] == [("0001-folio-1.jpg", (256, 256)),
                                                               ("0002-folio-2.jpg", (256, 256))]
    group = json.loads((out / "group.json").read_text())
    assert group["aligned"] == 1 and group["failed"] == {}
    assert group["iiif"]["failures"] == [{"canvas": f"{site}/canvas/c3", "label": "Folio 3",
                                          "reason": f"HTTP 404 Not Found from {site}/images/c3/info.json",
                                          "url": f"{site}/images/c3/info.json"}]
    report = json.loads((out / "report" / "report.json").read_text())
    assert {"input": f"Folio 3 ({site}/canvas/c3)", "stage": "fetch",
            "reason": f"HTTP 404 Not Found from {site}/images/c3/info.json"} in report["failures"]


def test_a_local_folder_is_read_where_it_is(tmp_path):
    assert collection_folder(tmp_path, tmp_path / "out", max_side=100) == (os.fspath(tmp_path), None)
    assert not (tmp_path / "out").exists()


def test_a_query_canvas_by_id_label_or_file_and_its_box_from_canvas_units(site, cache, tmp_path):
    with pytest.warns(UserWarning):
        folder, source = collection_folder(f"{site}/manifest.json", tmp_path, max_side=128, settings=cache)
    assert folder == os.fspath(tmp_path / "iiif")
    path, image, owner = single_image("Folio 2", source, tmp_path, max_side=128, settings=cache)
    assert owner is source and path == os.path.join(folder, image.file)
    assert single_image(f"{site}/canvas/c2", source, tmp_path, max_side=128)[1] is image
    assert single_image(image.file, source, tmp_path, max_side=128)[1] is image
    # canvas 1024 x 1024, file 128 x 128: canvas units / 8, outward to whole pixels
    assert (image.canvas_width, image.file_width) == (1024, 128)
    assert file_box(image, [100, 203, 500, 1024]) == [12, 25, 63, 128]


def test_a_query_canvas_that_failed_or_does_not_exist_is_one_line(site, cache, tmp_path):
    with pytest.warns(UserWarning):
        _, source = collection_folder(f"{site}/manifest.json", tmp_path, max_side=128, settings=cache)
    with pytest.raises(IIIFInputError, match=r"^Folio 3: this canvas could not be fetched \(HTTP 404 "):
        single_image("Folio 3", source, tmp_path, max_side=128)
    with pytest.raises(IIIFInputError, match=r"^Folio 9: neither an image file nor a canvas of .*'Folio 1'"):
        single_image("Folio 9", source, tmp_path, max_side=128)


def test_a_query_given_as_iiif_of_its_own_is_fetched_beside(site, cache, tmp_path):
    path, image, owner = single_image(f"{site}/images/c1/info.json", None, tmp_path, max_side=128,
                                      settings=cache)
    assert Path(path).parent == tmp_path / "iiif-query" and image.canvas_id == f"{site}/images/c1"
    assert owner.images == [image]


def test_detect_on_iiif_needs_out(site, capsys):
    code = main(["detect", "Folio 1", f"{site}/manifest.json", "--box", "0", "0", "10", "10", "--random-weights"])
    assert code == 1
    assert capsys.readouterr().err.strip() == ("error: detect: IIIF input needs --out DIR (its canvases are "
                                               "fetched into DIR/iiif)")


def discovery_run(folder: Path, out: Path, pairs: list[dict]) -> DiscoveryRun:
    document = {"settings": {"checkpoint": None}, "groups": [{"id": 0, "pairs": pairs, "region_groups": []}]}
    return DiscoveryRun(os.fspath(folder), os.fspath(out), document, [], "", 0, 0)


def test_annotations_of_a_local_folder_target_its_files_and_a_rerun_leaves_only_its_own_pages(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name, size in (("a.png", (40, 30)), ("b.png", (50, 60)), ("c.png", (20, 20))):
        Image.fromarray(np.zeros((size[1], size[0], 3), np.uint8)).save(folder / name)
    pair = {"a": "a.png", "b": "b.png", "score": 0.5, "box_a": [1, 2, 11.5, 12], "box_b": [0, 0, 50, 60]}
    files = discovery_annotation_files(discovery_run(folder, tmp_path / "out", [pair]), None,
                                       Provenance("artminer-discover", "artminer-ltll"))
    directory = tmp_path / "out" / "annotations"
    assert files.directory == os.fspath(directory) and files.manifests == []
    index = json.loads((directory / "index.json").read_text())
    assert [(p["canvas"], p["file"], p["page"]) for p in index["pages"]] == [
        ((folder / n).absolute().as_uri(), f"{Path(n).stem}.json", (directory / f"{Path(n).stem}.json").as_uri())
        for n in ("a.png", "b.png")]
    page = json.loads((directory / "a.json").read_text())
    assert [a["target"]["selector"]["value"] for a in page["items"]] == ["xywh=1,2,11,10"]
    assert json.loads(page["items"][0]["body"][2]["value"])["weights"] == "artminer-ltll"

    other = {**pair, "a": "c.png", "box_a": [0, 0, 5, 5]}
    discovery_annotation_files(discovery_run(folder, tmp_path / "out", [other]), None, Provenance("m"),
                               base_url="https://host/run/annotations")
    assert sorted(p.name for p in directory.iterdir()) == ["b.json", "c.json", "index.json"]
    assert json.loads((directory / "c.json").read_text())["id"] == "https://host/run/annotations/c.json"


def test_index_build_and_add_take_a_manifest(site, cache, tmp_path, capsys):
    index = tmp_path / "index"
    small = ["--random-weights", "--scales", "16", "12", "--reference-cells", "12", "--margin", "2",
             "--descriptor-cells", "12", "--iiif-retries", "0", "--iiif-timeout", "2", "--quiet"]
    assert main(["index", "build", f"{site}/manifest.json", "--index", str(index), *small]) == 0
    captured = capsys.readouterr()
    assert "Folio 3" in captured.err and "HTTP 404" in captured.err  # the failing canvas, one line
    assert "the index holds 2 image(s)" in captured.out
    assert main(["index", "info", str(index)]) == 0
    assert "2 image(s)" in capsys.readouterr().out
