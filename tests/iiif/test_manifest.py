"""Presentation 2.1 and 3.0 manifests and collections, hand-written in each version's own idioms, read into
canvases (the expected values are copied from the documents, not computed by the parser)."""

import pytest

from artdup_jax.data.iiif.manifest import ImageService, ManifestError, label_text, read_canvases

P2 = "http://iiif.io/api/presentation/2/context.json"
P3 = "http://iiif.io/api/presentation/3/context.json"


LEVEL1_11 = "http://library.stanford.edu/iiif/image-api/1.1/compliance.html#level1"


def painting_21(canvas, resource):
    return [{"@type": "oa:Annotation", "motivation": "sc:painting", "on": canvas, "resource": resource}]


def manifest_21():
    """2.1: label as @value list, a service with a profile list, an oa:Choice, a canvas with a static image."""
    return {
        "@context": P2, "@id": "https://ex.org/iiif/book/manifest", "@type": "sc:Manifest",
        "label": [{"@value": "Book of hours", "@language": "en"}],
        "sequences": [{"@type": "sc:Sequence", "canvases": [
            {"@id": "https://ex.org/iiif/book/canvas/f1r", "@type": "sc:Canvas", "label": "f. 1r",
             "width": 4000, "height": 6000,
             "images": painting_21("https://ex.org/iiif/book/canvas/f1r", {
                 "@id": "https://img.ex.org/iiif/2/f1r/full/full/0/default.jpg", "@type": "dctypes:Image",
                 "width": 4000, "height": 6000,
                 "service": {"@context": "http://iiif.io/api/image/2/context.json",
                             "@id": "https://img.ex.org/iiif/2/f1r/",
                             "profile": ["http://iiif.io/api/image/2/level2.json", {"formats": ["jpg", "png"]}]}})},
            {"@id": "https://ex.org/iiif/book/canvas/f1v", "@type": "sc:Canvas",
             "label": ["f. 1v", "folio 1 verso"], "width": 2000, "height": 3000,
             "images": painting_21("https://ex.org/iiif/book/canvas/f1v", {
                 "@type": "oa:Choice",
                 "default": {"@id": "https://img.ex.org/f1v-colour.jpg", "@type": "dctypes:Image",
                             "service": {"@context": "http://iiif.io/api/image/1/context.json",
                                         "@id": "https://img.ex.org/iiif/1/f1v", "profile": LEVEL1_11}},
                 "item": [{"@id": "https://img.ex.org/f1v-uv.jpg", "@type": "dctypes:Image"}]})},
            {"@id": "https://ex.org/iiif/book/canvas/f2r", "@type": "sc:Canvas", "label": "f. 2r",
             "width": 100, "height": 150,
             "images": painting_21("https://ex.org/iiif/book/canvas/f2r",
                                   {"@id": "https://img.ex.org/static/f2r.png", "@type": "dctypes:Image"})},
        ]}],
    }


def manifest_30():
    """3.0: a language-map label, an ImageService3 at level 0 behind an auth service, an ImageService2 inside
    a 3.0 manifest, a Choice body, an image painted on part of its canvas."""
    def canvas(name, label, width, height, body, target=None):
        cid = f"https://ex.org/iiif/3/scroll/canvas/{name}"
        return {"id": cid, "type": "Canvas", "label": label, "width": width, "height": height,
                "items": [{"id": f"{cid}/p", "type": "AnnotationPage", "items": [
                    {"id": f"{cid}/p/a", "type": "Annotation", "motivation": "painting", "body": body,
                     "target": target or cid}]}]}

    return {
        "@context": P3, "id": "https://ex.org/iiif/3/scroll/manifest", "type": "Manifest",
        "label": {"fr": ["Rouleau"], "en": ["Scroll"]},
        "items": [
            canvas("a", {"none": ["A"]}, 1200, 800,
                   {"id": "https://img.ex.org/iiif/3/a/full/max/0/default.jpg", "type": "Image", "width": 2400,
                    "height": 1600,
                    "service": [{"id": "https://ex.org/auth/login", "type": "AuthProbeService2"},
                                {"id": "https://img.ex.org/iiif/3/a", "type": "ImageService3", "profile": "level0"}]}),
            canvas("b", {"de": ["Blatt B"]}, 1000, 1000,
                   {"type": "Choice", "items": [
                       {"id": "https://img.ex.org/iiif/2/b/full/full/0/default.jpg", "type": "Image",
                        "service": [{"@id": "https://img.ex.org/iiif/2/b", "@type": "ImageService2",
                                     "profile": "http://iiif.io/api/image/2/level1.json"}]},
                       {"id": "https://img.ex.org/b-ir.jpg", "type": "Image"}]}),
            canvas("c", {"en": ["C"]}, 3000, 2000,
                   {"id": "https://img.ex.org/iiif/3/c/full/max/0/default.jpg", "type": "Image",
                    "service": [{"id": "https://img.ex.org/iiif/3/c", "type": "ImageService3", "profile": "level2"}]},
                   target="https://ex.org/iiif/3/scroll/canvas/c#xywh=100,200,1500,1000"),
        ],
    }


def test_presentation_21_canvases_in_order_with_ids_labels_and_sizes():
    canvases, failures = read_canvases(manifest_21())
    assert failures == []
    assert [c.id for c in canvases] == [f"https://ex.org/iiif/book/canvas/{n}" for n in ("f1r", "f1v", "f2r")]
    assert [c.label for c in canvases] == ["f. 1r", "f. 1v", "f. 2r"]
    assert [(c.width, c.height) for c in canvases] == [(4000, 6000), (2000, 3000), (100, 150)]
    assert {c.manifest_id for c in canvases} == {"https://ex.org/iiif/book/manifest"}


def test_presentation_21_image_services_with_version_and_level():
    first, second, third = read_canvases(manifest_21())[0]
    assert first.service == ImageService("https://img.ex.org/iiif/2/f1r", 2, 2)  # trailing slash dropped
    assert (first.image_width, first.image_height) == (4000, 6000)
    assert second.service == ImageService("https://img.ex.org/iiif/1/f1v", 1, 1)  # Choice: the default
    assert second.image_url == "https://img.ex.org/f1v-colour.jpg"
    assert third.service is None and third.image_url == "https://img.ex.org/static/f2r.png"


def test_presentation_30_canvases_services_of_both_image_api_versions():
    a, b, c = read_canvases(manifest_30())[0]
    assert [x.label for x in (a, b, c)] == ["A", "Blatt B", "C"]
    assert a.service == ImageService("https://img.ex.org/iiif/3/a", 3, 0)  # the auth service passed over
    assert (a.width, a.height, a.image_width, a.image_height) == (1200, 800, 2400, 1600)
    assert b.service == ImageService("https://img.ex.org/iiif/2/b", 2, 1)  # ImageService2 in a 3.0 manifest
    assert c.service == ImageService("https://img.ex.org/iiif/3/c", 3, 2)


def test_painting_on_part_of_a_canvas_gives_its_placement():
    a, _, c = read_canvases(manifest_30())[0]
    assert a.placement is None
    assert c.placement == (100.0, 200.0, 1500.0, 1000.0)


def test_labels_of_every_form():
    assert label_text({"fr": ["Rouleau"], "en": ["Scroll"]}) == "Scroll"
    assert label_text({"none": ["42r"]}) == "42r"
    assert label_text([{"@value": "Titre", "@language": "fr"}]) == "Titre"
    assert label_text(None, default="canvas 3") == "canvas 3"


def test_collection_21_loads_referenced_manifests_and_records_a_failing_one():
    collection = {"@context": P2, "@id": "https://ex.org/c", "@type": "sc:Collection", "label": "all",
                  "manifests": [{"@id": "https://ex.org/iiif/book/manifest", "@type": "sc:Manifest", "label": "Book"},
                                {"@id": "https://ex.org/gone/manifest", "@type": "sc:Manifest", "label": "Gone"}]}
    documents = {"https://ex.org/iiif/book/manifest": manifest_21()}

    def load(url):
        if url not in documents:
            raise OSError(f"HTTP 404 Not Found from {url}")
        return documents[url]

    canvases, failures = read_canvases(collection, load=load)
    assert len(canvases) == 3
    assert [(f.id, f.label) for f in failures] == [("https://ex.org/gone/manifest", "Gone")]
    assert "404" in failures[0].reason and "\n" not in failures[0].reason


def test_collection_30_nested_embedded_and_referenced_members_each_once():
    inner = {"id": "https://ex.org/inner", "type": "Collection", "label": {"en": ["inner"]},
             "items": [{"id": "https://ex.org/iiif/3/scroll/manifest", "type": "Manifest"},
                       {"id": "https://ex.org/outer", "type": "Collection"}]}  # a cycle back to the outer one
    outer = {"@context": P3, "id": "https://ex.org/outer", "type": "Collection", "label": {"en": ["outer"]},
             "items": [manifest_21() | {"@context": P2}, inner]}
    loaded = []

    def load(url):
        loaded.append(url)
        return {"https://ex.org/iiif/3/scroll/manifest": manifest_30()}[url]

    canvases, failures = read_canvases(outer, load=load)
    assert loaded == ["https://ex.org/iiif/3/scroll/manifest"]
    assert [c.id.rsplit("/", 1)[-1] for c in canvases] == ["f1r", "f1v", "f2r", "a", "b", "c"]
    assert failures == []


def test_a_document_that_is_not_a_manifest_is_one_clear_error():
    with pytest.raises(ManifestError, match="not a IIIF manifest or collection"):
        read_canvases({"@context": "http://iiif.io/api/image/3/context.json", "id": "x", "type": "ImageService3"})
