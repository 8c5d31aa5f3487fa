"""A manifest, a collection file or a list of Image API services -> a folder the collection commands read, with
each file's canvas and the coordinate mapping (scale and placement checked by hand-computed numbers)."""

import json
import os

import pytest

from artdup_jax.data.folders import image_files
from artdup_jax.data.iiif.fetch import FetchSettings
from artdup_jax.data.iiif.source import CanvasImage, IIIFInputError, IIIFSource, iiif_source, is_iiif_input
from tests.iiif.layout import LayoutImage, picture, write_layout
from tests.iiif.server import Fault, LoopbackServer


@pytest.fixture
def site(tmp_path):
    """Three canvases (c2's canvas is twice its image's size; c3 answers 404) on a loopback server."""
    images = [LayoutImage("c1", "Folio 1r", picture(1, 640, 480)),
              LayoutImage("c2", "Folio 1v (détail)", picture(2, 400, 400), canvas_size=(800, 800)),
              LayoutImage("c3", "Folio 2r", picture(3, 640, 480))]
    server = LoopbackServer(tmp_path / "site", [Fault("/images/c3/", status=404)])
    write_layout(tmp_path / "site", server.url, images, version=3)
    settings = FetchSettings(workers=2, read_timeout=2.0, retries=1, backoff=0.01, cache_dir=str(tmp_path / "cache"))
    with server:
        yield server, settings


def test_manifest_url_gives_one_file_per_canvas_in_order_and_lists_the_failure(site, tmp_path):
    server, settings = site
    with pytest.warns(UserWarning, match=r"IIIF: skipping Folio 2r .*HTTP 404"):
        source = iiif_source(f"{server.url}/manifest.json", tmp_path / "in", max_side=300, settings=settings)
    paths, skipped = image_files(source.folder)
    assert [os.path.basename(p) for p in paths] == ["0001-folio-1r.jpg", "0002-folio-1v-detail.jpg"]
    assert skipped == []  # the mapping files are hidden
    assert [i.canvas_id for i in source.images] == [f"{server.url}/canvas/c1", f"{server.url}/canvas/c2"]
    assert source.report()["failures"] == [{"canvas": f"{server.url}/canvas/c3", "label": "Folio 2r",
                                            "reason": f"HTTP 404 Not Found from {server.url}/images/c3/info.json",
                                            "url": f"{server.url}/images/c3/info.json"}]
    assert list(source.manifests) == [f"{server.url}/manifest.json"]


def test_boxes_map_to_canvas_units_and_full_resolution_pixels(site, tmp_path):
    server, settings = site
    with pytest.warns(UserWarning):
        source = iiif_source(f"{server.url}/manifest.json", tmp_path / "in", max_side=150, settings=settings)
    detail = source.image("0002-folio-1v-detail.jpg")
    # file 200x200 (listed size reaching 150), image 400x400, canvas 800x800
    assert (detail.file_width, detail.image_width, detail.canvas_width) == (200, 400, 800)
    assert detail.to_canvas([10, 20, 60, 120]) == (40.0, 80.0, 200.0, 400.0)
    assert detail.to_image([10, 20, 60, 120]) == (20.0, 40.0, 100.0, 200.0)
    assert detail.region_url([10, 20, 60, 120]) is None  # level 0 cannot cut regions
    assert detail.to_file([40, 80, 240, 480]) == (10.0, 20.0, 60.0, 120.0)
    assert source.find(f"{server.url}/canvas/c2") is detail is source.find("Folio 1v (détail)")
    assert source.find("nothing") is None


def test_the_source_reads_back_from_its_folder(site, tmp_path):
    server, settings = site
    with pytest.warns(UserWarning):
        source = iiif_source(f"{server.url}/manifest.json", tmp_path / "in", max_side=300, settings=settings)
    again = IIIFSource.load(tmp_path / "in")
    assert again.images == source.images and again.failures == source.failures
    assert again.manifests == source.manifests


def test_a_list_of_image_services_in_a_text_file(site, tmp_path):
    server, settings = site
    listing = tmp_path / "services.txt"
    listing.write_text(f"# two services\n{server.url}/images/c1/info.json\n{server.url}/images/c2/info.json\n")
    assert is_iiif_input(listing)
    source = iiif_source(str(listing), tmp_path / "in", max_side=300, settings=settings)
    assert [i.canvas_id for i in source.images] == [f"{server.url}/images/c1", f"{server.url}/images/c2"]
    assert [(i.canvas_width, i.canvas_height, i.manifest_id) for i in source.images] == [(640, 480, ""),
                                                                                           (400, 400, "")]


def test_a_rerun_removes_only_files_of_the_previous_run(site, tmp_path):
    server, settings = site
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "mine.txt").write_text("not ours")
    with pytest.warns(UserWarning):
        iiif_source(f"{server.url}/manifest.json", folder, max_side=300, settings=settings)
    iiif_source([f"{server.url}/images/c2/info.json"], folder, max_side=300, settings=settings)
    assert sorted(os.listdir(folder)) == [".iiif-canvases.json", ".iiif-manifests.json", "0001-c2.jpg", "mine.txt"]


def test_nothing_fetchable_is_one_error(site, tmp_path):
    server, settings = site
    with pytest.raises(IIIFInputError, match="none of the 1 IIIF canvases"), pytest.warns(UserWarning):
        iiif_source([f"{server.url}/images/c3/info.json"], tmp_path / "in", settings=settings)
    with pytest.raises(IIIFInputError, match="no IIIF canvas could be read"):
        iiif_source([f"{server.url}/nothing.json"], tmp_path / "in", settings=settings)


def test_iiif_inputs_are_told_from_folders(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"type": "Manifest"}))
    assert is_iiif_input("https://ex.org/manifest") and is_iiif_input(tmp_path / "m.json")
    assert not is_iiif_input(tmp_path) and not is_iiif_input(tmp_path / "missing")


def test_placement_on_part_of_a_canvas():
    image = CanvasImage(file="f.jpg", canvas_id="c", label="", manifest_id="m", canvas_width=3000,
                        canvas_height=2000, placement=(100.0, 200.0, 1500.0, 1000.0), file_width=300, file_height=200,
                        image_width=3000, image_height=2000, url="u", service_base="https://i/c", service_version=3,
                        service_level=2)
    assert image.to_canvas([0, 0, 300, 200]) == (100.0, 200.0, 1500.0, 1000.0)
    assert image.region_url([30, 20, 60, 40.5]) == "https://i/c/300,200,300,205/max/0/default.jpg"
