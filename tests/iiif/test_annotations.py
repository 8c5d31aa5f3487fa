"""W3C Web Annotations of matches, groups and detections: required keys, ``xywh`` in canvas units (computed
here by hand from the file, image and canvas sizes), links between regions, Image API region URLs, one
AnnotationPage per canvas and manifest copies that list them."""

import json
import re

from artdup_jax.data.iiif.source import CanvasImage
from artdup_jax.report.annotations import (
    ANNOTATION_CONTEXT,
    Provenance,
    Region,
    annotated_manifest,
    detection_annotations,
    discovery_annotations,
    local_image,
    write_annotations,
)

MANIFEST = "https://ex.org/iiif/book/manifest"
# A: file 500x400, full image 5000x4000 (level 2, 3.0), canvas 2500x2000 -> canvas units = 5 x file pixels.
A = CanvasImage(file="0001-a.jpg", canvas_id="https://ex.org/canvas/a", label="Folio A", manifest_id=MANIFEST,
                canvas_width=2500, canvas_height=2000, placement=(0.0, 0.0, 2500.0, 2000.0), file_width=500,
                file_height=400, image_width=5000, image_height=4000, url="u", service_base="https://img.ex.org/a",
                service_version=3, service_level=2)
# B: file 300x300, full image 600x600 (level 0, 2.1), canvas 600x600 -> canvas units = 2 x file pixels.
B = CanvasImage(file="0002-b.jpg", canvas_id="https://ex.org/canvas/b", label="Folio B", manifest_id=MANIFEST,
                canvas_width=600, canvas_height=600, placement=(0.0, 0.0, 600.0, 600.0), file_width=300,
                file_height=300, image_width=600, image_height=600, url="u", service_base="https://img.ex.org/b",
                service_version=2, service_level=0)
IMAGES = {A.file: A, B.file: B}
DISCOVERY = {"settings": {"checkpoint": "ltllModel.pth"},
             "groups": [{"id": 0, "images": [],
                         "pairs": [{"a": A.file, "b": B.file, "score": 0.8731, "box_a": [10, 20, 110.5, 220],
                                    "box_b": [30, 30, 90, 150]}],
                         "region_groups": [{"images": [{"file": A.file, "box": [10, 20, 110.5, 220]},
                                                       {"file": B.file, "box": [30, 30, 90, 150]}],
                                            "num_pairs": 1}]}]}
XYWH_A, XYWH_B = "xywh=50,100,503,1000", "xywh=60,60,120,240"  # outward to whole canvas units
REGION_URL_A = "https://img.ex.org/a/100,200,1005,2000/max/0/default.jpg"  # full-resolution pixels (x10)


def bodies(annotation, purpose):
    return [b for b in annotation["body"] if b.get("purpose") == purpose]


def assessment(annotation):
    (body,) = bodies(annotation, "assessing")
    assert body["type"] == "TextualBody" and body["format"] == "application/json"
    return json.loads(body["value"])


def by_kind(annotations, kind):
    return [a for a in annotations if assessment(a)["kind"] == kind]


def test_every_annotation_has_the_required_web_annotation_keys():
    for annotation in discovery_annotations(DISCOVERY, IMAGES.get):
        assert annotation["@context"] == ANNOTATION_CONTEXT
        assert annotation["type"] == "Annotation" and re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", annotation["id"])
        assert {"commenting", "linking"} <= set(annotation["motivation"])
        (comment,) = bodies(annotation, "commenting")
        assert comment["type"] == "TextualBody" and comment["value"]
        target = annotation["target"]
        assert target["type"] == "SpecificResource" and target["source"]["type"] == "Canvas"
        assert target["source"]["partOf"] == [{"id": MANIFEST, "type": "Manifest"}]
        assert target["selector"]["type"] == "FragmentSelector"
        assert target["selector"]["conformsTo"] == "http://www.w3.org/TR/media-frags/"
        assert re.fullmatch(r"xywh=\d+,\d+,\d+,\d+", target["selector"]["value"])


def test_a_match_is_two_annotations_in_canvas_units_linking_each_other():
    side_a, side_b = by_kind(discovery_annotations(DISCOVERY, IMAGES.get), "match")
    assert (side_a["target"]["source"]["id"], side_a["target"]["selector"]["value"]) == (A.canvas_id, XYWH_A)
    assert (side_b["target"]["source"]["id"], side_b["target"]["selector"]["value"]) == (B.canvas_id, XYWH_B)
    (link_a,) = [b for b in bodies(side_a, "linking") if b["type"] == "SpecificResource"]
    assert (link_a["source"]["id"], link_a["selector"]["value"]) == (B.canvas_id, XYWH_B)
    (link_b,) = [b for b in bodies(side_b, "linking") if b["type"] == "SpecificResource"]
    assert (link_b["source"]["id"], link_b["selector"]["value"]) == (A.canvas_id, XYWH_A)


def test_the_body_carries_score_method_and_weights():
    side_a, _ = by_kind(discovery_annotations(DISCOVERY, IMAGES.get), "match")
    assert assessment(side_a) == {"score": 0.8731, "method": "artminer-discover", "weights": "ltllModel.pth",
                                  "kind": "match", "group": 0}
    assert bodies(side_a, "tagging") == [{"type": "TextualBody", "purpose": "tagging", "value": "artdup match"}]


def test_image_api_urls_of_the_regions_where_the_server_can_cut_them():
    side_a, side_b = by_kind(discovery_annotations(DISCOVERY, IMAGES.get), "match")
    assert bodies(side_a, "identifying") == [{"id": REGION_URL_A, "type": "Image", "format": "image/jpeg",
                                              "purpose": "identifying"}]
    assert bodies(side_b, "identifying") == []  # B is level 0
    assert [b["id"] for b in bodies(side_b, "linking") if b["type"] == "Image"] == [REGION_URL_A]


def test_a_region_group_annotates_each_member_linking_the_others():
    group = by_kind(discovery_annotations(DISCOVERY, IMAGES.get), "group")
    assert [a["target"]["selector"]["value"] for a in group] == [XYWH_A, XYWH_B]
    assert assessment(group[0])["score"] == 0.8731 and assessment(group[0])["num_pairs"] == 1


def test_ids_are_stable_across_runs_and_distinct():
    first = [a["id"] for a in discovery_annotations(DISCOVERY, IMAGES.get)]
    assert first == [a["id"] for a in discovery_annotations(DISCOVERY, IMAGES.get)]
    assert len(set(first)) == len(first) == 4


def test_boxes_are_rounded_outward_and_kept_inside_the_canvas():
    assert Region(B, (0.2, 0.2, 299.9, 400)).xywh() == "xywh=0,0,600,600"
    assert Region(A, (-5, -5, 1, 1)).xywh() == "xywh=0,0,5,5"


def test_detections_link_the_query_region_and_keep_the_best():
    document = {"box": [0, 0, 100, 100], "detections": [{"file": B.file, "score": 0.9, "box": [30, 30, 90, 150]},
                                                        {"file": A.file, "score": 0.2, "box": [0, 0, 50, 50]}]}
    query = local_image("/data/query.png", 200, 100)
    found = detection_annotations(document, IMAGES.get, query, Provenance("artminer-detect", None), min_score=0.5)
    detection, query_annotation = found
    assert detection["target"]["selector"]["value"] == XYWH_B
    assert assessment(detection) == {"score": 0.9, "method": "artminer-detect", "weights": None,
                                     "kind": "detection", "rank": 1}
    (link,) = [b for b in bodies(detection, "linking") if b["type"] == "SpecificResource"]
    assert link["source"] == {"id": "file:///data/query.png", "type": "Image"}
    assert link["selector"]["value"] == "xywh=0,0,100,100"
    assert query_annotation["target"]["source"]["id"] == "file:///data/query.png"


def test_one_annotation_page_per_canvas_and_manifest_copies_that_list_them(tmp_path):
    manifest = {"@context": "http://iiif.io/api/presentation/3/context.json", "id": MANIFEST, "type": "Manifest",
                "items": [{"id": A.canvas_id, "type": "Canvas"}, {"id": B.canvas_id, "type": "Canvas"},
                          {"id": "https://ex.org/canvas/c", "type": "Canvas"}]}
    annotations = discovery_annotations(DISCOVERY, IMAGES.get)
    files = write_annotations(annotations, tmp_path, [A, B], base_url="https://host/anno",
                              manifests={MANIFEST: manifest})
    page = json.loads(open(files.pages[A.canvas_id]).read())
    assert page["@context"] == ANNOTATION_CONTEXT and page["type"] == "AnnotationPage"
    assert page["id"] == "https://host/anno/0001-a.json" == files.urls[A.canvas_id]
    assert [a["target"]["source"]["id"] for a in page["items"]] == [A.canvas_id] * 2
    copy = json.loads((tmp_path / "manifest-1.json").read_text())
    assert copy["id"] == "https://host/anno/manifest-1.json"
    assert [c.get("annotations") for c in copy["items"]] == [
        [{"id": "https://host/anno/0001-a.json", "type": "AnnotationPage"}],
        [{"id": "https://host/anno/0002-b.json", "type": "AnnotationPage"}], None]
    index = json.loads((tmp_path / "index.json").read_text())
    assert [(p["label"], p["annotations"]) for p in index["pages"]] == [("Folio A", 2), ("Folio B", 2)]


def test_a_21_manifest_copy_lists_pages_as_other_content():
    manifest = {"@context": "http://iiif.io/api/presentation/2/context.json", "@id": MANIFEST,
                "@type": "sc:Manifest", "sequences": [{"canvases": [{"@id": A.canvas_id, "@type": "sc:Canvas"}]}]}
    copy = annotated_manifest(manifest, {A.canvas_id: "https://host/a.json"})
    assert copy["sequences"][0]["canvases"][0]["otherContent"] == [{"@id": "https://host/a.json",
                                                                    "@type": "sc:AnnotationList"}]
    assert "otherContent" not in manifest["sequences"][0]["canvases"][0]
