"""Every alignment the tool reports is verified against the identity: the classical portfolio as the weightless
default, the learned coarse stage's result scored the same way (with the portfolio as its fallback), the
weightless and learned fine stages labelled, and a group of painted / printed / photographed copies with an
unrelated image through ``artdup align-group``."""

import dataclasses
import json
from pathlib import Path

import cv2
import jax
import numpy as np
import pytest
import skimage.data
from PIL import Image

from artdup_jax import cli
from artdup_jax.app import align, alignment_stages
from artdup_jax.ransac_flow import coarse as coarse_lib
from tests.app import bad_inputs
from tests.geometry import synthetic_copies as synthetic

BRUEGHEL = Path(__file__).resolve().parents[3] / "shared" / "data" / "brueghel"
CONFIG = dataclasses.replace(coarse_lib.QUICK_START, size=128)


@pytest.fixture(scope="module")
def photo_pair():
    """The test photograph (source) and its known warp (target), (H, W, 3) float32."""
    photo = bad_inputs.photograph()
    return photo.astype(np.float32) / 255, bad_inputs.warp(photo).astype(np.float32) / 255


def test_the_default_coarse_stage_without_weights_is_the_classical_portfolio():
    assert align.AlignSettings().coarse_method == "classical"
    assert align.AlignSettings(coarse_checkpoint="resnet50.pth").coarse_method == "deep"
    assert align.AlignSettings(coarse="sift").coarse_method == "sift"


def _learned_coarse_stage_as(monkeypatch, stand_in):
    """``align_pair``'s "deep" coarse stage replaced by ``stand_in(...)`` (no ResNet-50 weights in the tests)."""
    real = alignment_stages.align_pair

    def align_pair(source, target, *, coarse, **kwargs):
        return stand_in(real, source, target, **kwargs) if coarse == "deep" else real(source, target, coarse=coarse,
                                                                                       **kwargs)

    monkeypatch.setattr(alignment_stages, "align_pair", align_pair)


def test_the_learned_coarse_result_is_scored_and_the_portfolio_replaces_it_when_it_does_not_verify(
        monkeypatch, photo_pair):
    # A learned stage that returns the identity: it cannot beat the identity, so the portfolio takes over.
    _learned_coarse_stage_as(monkeypatch, lambda real, s, t, **kw: real(s, t, coarse="identity", **kw))
    staged = alignment_stages.align_staged(*photo_pair, coarse="deep", config=CONFIG)
    verification = staged.verification
    assert verification.verified and verification.coarse_stage == "classical"
    assert verification.fallback_from == "deep" and "does not verify" in verification.fallback_reason
    assert verification.candidate_scores["deep"] == pytest.approx(verification.identity_score, abs=1e-6)


def test_the_portfolio_is_the_fallback_when_the_learned_coarse_stage_finds_no_homography(monkeypatch, photo_pair):
    def no_homography(real, source, target, **kwargs):
        raise ValueError("no homography found: too few consistent matches between the two images")

    _learned_coarse_stage_as(monkeypatch, no_homography)
    staged = alignment_stages.align_staged(*photo_pair, coarse="deep", config=CONFIG)
    assert staged.verification.verified and staged.verification.fallback_from == "deep"
    assert "no homography" in staged.verification.fallback_reason


def test_a_verified_learned_coarse_result_is_kept(monkeypatch, photo_pair):
    _learned_coarse_stage_as(monkeypatch, lambda real, s, t, **kw: real(s, t, coarse="sift", **kw))
    staged = alignment_stages.align_staged(*photo_pair, coarse="deep", config=CONFIG)
    assert staged.verification.verified and staged.verification.coarse_stage == "deep"
    assert staged.verification.fallback_from is None and set(staged.verification.candidate_scores) == {"deep"}


def test_the_identity_coarse_stage_alone_is_never_a_success(photo_pair):
    with pytest.raises(alignment_stages.UnverifiedAlignment, match="identity"):
        alignment_stages.align_staged(*photo_pair, coarse="identity", config=CONFIG)


def test_the_weightless_fine_stage_is_labelled_as_not_the_learned_network(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    source, target = bad_inputs.photo(folder), bad_inputs.warped(folder)
    pair = align.align_images(str(source), str(target), str(tmp_path / "out"),
                              align.AlignSettings(size=128, weightless_fine=True))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["fine_stage"] == "weightless" and "not the learned RANSAC-Flow fine network" in \
        summary["fine_stage_label"] and summary["fine"] is False
    assert (tmp_path / "out" / "fine_weightless.png").is_file() and not (tmp_path / "out" / "fine.png").exists()
    # The full-resolution map carries the fine stage: at the original target pixels of the processing lattice
    # (here the same frame) it reads where the processing grid does.
    alignment = pair.alignment
    hs, ws = alignment.source.shape[:2]
    grid_pixels = (alignment.grid + 1) / 2 * np.array([ws - 1, hs - 1])
    flow = np.load(tmp_path / "out" / "flow_full.npy")
    inside = alignment.matchability > 0.5
    assert np.abs(flow - grid_pixels)[inside].max() < 0.05


def test_the_learned_fine_network_runs_on_the_classical_coarse_stage(photo_pair, tmp_path):
    from artdup_jax.ransac_flow.model import init_fine_network

    variables = init_fine_network(jax.random.key(0))  # untrained: the plumbing is what is checked
    staged = alignment_stages.align_staged(*photo_pair, coarse="classical", config=CONFIG, fine_variables=variables)
    summary = align.write_alignment(staged, str(tmp_path), source=photo_pair[0])
    assert summary["fine"] is True and summary["fine_stage"] == "learned" and (tmp_path / "fine.png").is_file()
    assert summary["coarse_stage"] == "classical" and summary["verified"]


def test_the_brueghel_detail_pair_aligns_with_artdup_align(tmp_path, capsys):
    if not (BRUEGHEL / "detail_pair_a.png").is_file():
        pytest.skip(f"{BRUEGHEL} is absent (the shared data folder)")
    out = tmp_path / "brueghel"
    assert cli.main(["align", str(BRUEGHEL / "detail_pair_a.png"), str(BRUEGHEL / "detail_pair_b.png"), "--out",
                     str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verified"] and summary["verification_score"] > summary["identity_score"] + 0.05
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["sections"][0]["metrics"]["verified"] is True and "method" in report["sections"][0]["metrics"]


# ------------------------------------------------------------------ a group of copies and an unrelated image

MEDIA = (  # (copy's name, medium, geometry of synthetic_copies, background outside the original)
    ("restyled", synthetic.restyled, "perspective", 0.0),
    ("grey", synthetic.grey, "rotated 18° at 0.8", 0.0),
    ("painted", synthetic.painted, "detail x1.6", 0.0),
    ("restyled_small", synthetic.restyled, "rescaled 0.45, rotated -6°", 1.0),
    ("engraved", synthetic.engraved, "mild perspective", 1.0),
    ("painted_2", synthetic.painted, "rotated 12° at 0.9", 0.0),
    ("blurred_grey", synthetic.blurred_grey, "rotated -15° at 1.25", 0.5),
    ("negative", synthetic.negative, "perspective 2", 0.0),
    ("engraved_detail", synthetic.engraved, "detail x1.4", 1.0),
    ("grey_turned", synthetic.grey, "quarter turn", 0.0),
)


@pytest.fixture(scope="module")
def copies_group(tmp_path_factory):
    """One original (a Raphael copy, else a photograph), ten painted / printed / photographed copies of it with
    known homographies, and an unrelated photograph."""
    folder = tmp_path_factory.mktemp("copies")
    images = synthetic.unraphael_images()
    if images is None:
        original = skimage.data.astronaut().astype(np.float32) / 255
    else:
        original = synthetic.read_rgb(images / "1_london_nat_gallery.jpg").astype(np.float32) / 255
        original = cv2.resize(original, None, fx=700 / max(original.shape[:2]), fy=700 / max(original.shape[:2]),
                              interpolation=cv2.INTER_AREA)
    Image.fromarray((original * 255).round().astype(np.uint8)).save(folder / "original.png")
    rng = np.random.default_rng(7)
    truth = {}
    for name, medium, geometry, background in MEDIA:
        G, hw = synthetic.GEOMETRIES[geometry](original.shape[:2])
        drawn = cv2.warpPerspective(original, G, (hw[1], hw[0]), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(background,) * 3)
        Image.fromarray((np.clip(medium(drawn, rng), 0, 1) * 255).round().astype(np.uint8)).save(folder / f"{name}.png")
        truth[name] = (np.linalg.inv(G), hw, original.shape[:2])
    Image.fromarray(skimage.data.rocket()).save(folder / "unrelated.png")
    return folder, truth


@pytest.fixture(scope="module")
def aligned_group(copies_group, tmp_path_factory):
    folder, _ = copies_group
    out = tmp_path_factory.mktemp("group") / "out"
    assert cli.main(["align-group", str(folder / "original.png"), str(folder), "--out", str(out)]) == 0
    return out


def test_nine_in_ten_copies_verify_and_land_where_they_should(copies_group, aligned_group):
    _, truth = copies_group
    good = []
    for name, (H_true, source_hw, target_hw) in truth.items():
        summary_path = aligned_group / name / "summary.json"
        if not summary_path.is_file():
            continue
        summary = json.loads(summary_path.read_text())
        error = synthetic.alignment_error(np.array(summary["homographies_pixels"][0]), H_true, source_hw, target_hw)
        assert summary["verified"] and error < 0.05 * max(target_hw), (name, error)  # verified, never misaligned
        if error < 0.02 * max(target_hw):
            good.append(name)
    assert len(good) >= 9, sorted(set(truth) - set(good))


def test_the_unrelated_image_is_a_failure_with_its_reason_and_scores(aligned_group, copies_group):
    folder, _ = copies_group
    group = json.loads((aligned_group / "group.json").read_text())
    unrelated = str(folder / "unrelated.png")
    assert unrelated in group["failed"] and "not aligned" in group["failed"][unrelated]
    scores = group["verification"][unrelated]
    assert not scores["verified"] and scores["candidate_scores"]
    assert not (aligned_group / "unrelated" / "summary.json").exists()  # no result written as a success
    assert json.loads((aligned_group / "unrelated" / "failed.json").read_text())["verified"] is False
    report = json.loads((aligned_group / "report" / "report.json").read_text())
    failures = {f["input"]: f for f in report["failures"]}
    assert failures["unrelated.png"]["stage"] == "align" and "identity" in failures["unrelated.png"]["reason"]


def test_the_group_report_shows_each_copys_method_and_confidence(aligned_group):
    report = json.loads((aligned_group / "report" / "report.json").read_text())
    members = report["sections"][0]["members"]
    assert members and "unrelated" not in {m["name"] for m in members}
    for member in members:
        assert member["metrics"]["method"].startswith("classical: ")
        score, identity = map(float, member["metrics"]["score (identity)"].replace("(", "").replace(")", "").split())
        assert score > identity
