"""Every kind of bad input through the actual ``artdup`` subcommands: one line naming the file, and the rest of
a folder still processed."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from artdup_jax import cli
from tests.app import bad_inputs
from tests.app.bad_inputs import tool_lines

ALIGN = ["--size", "128", "--iterations", "500", "--no-report"]


def run(capsys, argv):
    """(exit code, the tool's error / warning lines) of ``artdup argv``."""
    code = cli.main([str(a) for a in argv])
    return code, tool_lines(capsys.readouterr().err)


@pytest.mark.parametrize("make, reason", [
    (bad_inputs.empty_file, "empty file"),
    (bad_inputs.text_file, "not a readable image"),
    (bad_inputs.truncated_jpeg, "truncated"),
    (bad_inputs.directory_named_like_an_image, "not a regular file"),
    (bad_inputs.tiny, "smaller than one 16-pixel feature cell"),
    (lambda folder: folder / "missing.png", "no such file"),
])
def test_align_of_an_unusable_source_is_one_error_line_naming_it(make, reason, tmp_path, capsys):
    source, target = make(tmp_path), bad_inputs.photo(tmp_path)
    code, lines = run(capsys, ["align", source, target, "--out", tmp_path / "out", *ALIGN])
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(f"error: {source}: ") and reason in lines[0]


def test_unreadable_file_names_the_permission_problem(tmp_path, capsys, monkeypatch):
    # The tests may run as root, where chmod 000 does not stop reading: make the open itself refuse.
    import PIL.Image

    locked, target = bad_inputs.photo(tmp_path, "locked.png"), bad_inputs.photo(tmp_path)
    real_open = PIL.Image.open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith("locked.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", refusing_open)
    code, lines = run(capsys, ["align", locked, target, "--out", tmp_path / "out", *ALIGN])
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"error: {locked}: ") and "Permission denied" in lines[0]


@pytest.fixture(scope="module")
def encodings_folder(tmp_path_factory):
    """The photograph warped as the reference (an identical copy would be no better than the identity, so not
    aligned), the photograph in five awkward encodings, and a noise image (no match)."""
    folder = tmp_path_factory.mktemp("encodings")
    bad_inputs.warped(folder, "reference.png")
    for make in (bad_inputs.grayscale, bad_inputs.rgba, bad_inputs.sixteen_bit, bad_inputs.cmyk_jpeg,
                 bad_inputs.exif_rotated, bad_inputs.noise):
        make(folder)
    return folder


def test_grayscale_rgba_16bit_cmyk_and_exif_rotated_images_align_like_the_original(encodings_folder, tmp_path,
                                                                                   capsys):
    out = tmp_path / "group"
    code, lines = run(capsys, ["align-group", encodings_folder / "reference.png", encodings_folder, "--out", out,
                               "--size", "128", "--iterations", "500"])
    assert code == 0
    h, w = bad_inputs.photograph().shape[:2]
    corners = np.float64([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    expected = cv2.perspectiveTransform(corners[:, None], bad_inputs.warp_homography((h, w)))[:, 0]
    for name in ("grayscale", "rgba", "sixteen_bit", "cmyk", "exif_rotated"):
        summary = json.loads((out / name / "summary.json").read_text())
        homography = np.array(summary["homographies_pixels"][0])
        # The photograph's own warp (an EXIF rotation left unapplied would give a 90-degree rotation).
        found = cv2.perspectiveTransform(corners[:, None], homography)[:, 0]
        assert summary["verified"] and np.abs(found - expected).max() < 2.0, (name, found - expected)
    # The pair with no match is a warning naming it and why it is not aligned; the others are aligned.
    assert lines == [line for line in lines if "noise.png" in line] and len(lines) == 1
    assert "not aligned" in lines[0] and lines[0].startswith(f"warning: {encodings_folder / 'noise.png'}")
    group = json.loads((out / "group.json").read_text())
    assert group["aligned"] == 5 and list(group["failed"]) == [str(encodings_folder / "noise.png")]
    report = json.loads((out / "report" / "report.json").read_text())
    assert [(f["input"], f["stage"]) for f in report["failures"]] == [("noise.png", "align")]


def test_a_pair_with_no_match_is_an_error_naming_both_files_and_writes_only_its_scores(tmp_path, capsys):
    source, target = bad_inputs.noise(tmp_path), bad_inputs.photo(tmp_path)
    code, lines = run(capsys, ["align", source, target, "--out", tmp_path / "out", *ALIGN])
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"error: {source} onto {target}: not aligned: ")
    failed = json.loads((tmp_path / "out" / "failed.json").read_text())  # the scores, and nothing else
    assert not failed["verified"] and failed["verification_score"] < failed["identity_score"] + 0.05
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["failed.json"]


def test_an_image_above_the_pixel_limit_is_downscaled_with_a_warning(tmp_path, capsys, monkeypatch):
    source, target = bad_inputs.photo(tmp_path), bad_inputs.warped(tmp_path)
    monkeypatch.setenv("ARTDUP_MAX_PIXELS", "6000")  # the photographs have 128 x 96 = 12288 pixels
    code, lines = run(capsys, ["align", source, target, "--out", tmp_path / "out", *ALIGN])
    assert code == 0
    assert f"warning: {source}: 128x96 image (0.0123 MP) downscaled to 89x67 (limit max_pixels=6000; " \
           "ARTDUP_MAX_PIXELS sets it)" in lines
    assert any(line.startswith(f"warning: {target}: 128x96 image") for line in lines)
    assert Image.open(tmp_path / "out" / "target.png").size[0] * Image.open(tmp_path / "out" / "target.png").size[1] \
        <= 128 * 128  # aligned at --size 128 from the downscaled target


@pytest.mark.parametrize("command", ["align-group", "discover", "detect"])
@pytest.mark.parametrize("folder_kind, message", [("empty", "no image files in this folder"),
                                                  ("missing", "no such folder")])
def test_an_empty_or_missing_folder_is_one_error_line_naming_it(command, folder_kind, message, tmp_path, capsys):
    folder = tmp_path / "collection"
    if folder_kind == "empty":
        folder.mkdir()
        (folder / "README.txt").write_text("not an image\n")
    photo = bad_inputs.photo(tmp_path)
    argv = {"align-group": ["align-group", photo, folder, "--out", tmp_path / "out"],
            "discover": ["discover", folder, "--random-weights", "--out", tmp_path / "out"],
            "detect": ["detect", photo, folder, "--box", 0, 0, 32, 32, "--random-weights"]}[command]
    code, lines = run(capsys, argv)
    assert code == 1 and lines == [lines[0]] and lines[0].startswith(f"error: {folder}: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("box, message", [((100, 50, 400, 90), "is outside the 128x96 image"),
                                          ((-5, 0, 10, 10), "is outside the 128x96 image"),
                                          ((60, 60, 10, 10), "is empty")])
def test_a_query_box_outside_the_image_is_an_error_naming_the_image(box, message, tmp_path, capsys):
    photo = bad_inputs.photo(tmp_path)
    code, lines = run(capsys, ["detect", photo, tmp_path, "--box", *box, "--random-weights"])
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"error: {photo}: query box {list(box)} ") and message in lines[0]


def test_a_checkpoint_of_the_wrong_family_names_the_file_and_its_family(resnet18_checkpoint, tmp_path, capsys):
    source, target = bad_inputs.photo(tmp_path), bad_inputs.warped(tmp_path)
    code, lines = run(capsys, ["align", source, target, "--out", tmp_path / "out", "--checkpoint",
                               resnet18_checkpoint, *ALIGN])
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith(f"error: {resnet18_checkpoint}: checkpoint does not match family 'ransac_flow'")
    assert lines[0].endswith("it matches family 'artminer' / 'resnet18'")
    code, lines = run(capsys, ["convert", "ransac_flow", resnet18_checkpoint, tmp_path / "converted"])
    assert code == 1 and len(lines) == 1 and "does not match family 'ransac_flow'" in lines[0]
    assert not (tmp_path / "converted").exists()
    # The same weights converted to a folder ('artminer'), then given to RANSAC-Flow: refused before any work.
    assert run(capsys, ["convert", "artminer", resnet18_checkpoint, tmp_path / "artminer"])[0] == 0
    code, lines = run(capsys, ["align", source, target, "--out", tmp_path / "out", "--checkpoint",
                               tmp_path / "artminer", *ALIGN])
    assert code == 1 and len(lines) == 1 and not (tmp_path / "out").exists()
    assert lines[0].startswith(f"error: {tmp_path / 'artminer'}: converted variables do not match family "
                               "'ransac_flow'")
    assert "it matches family 'artminer'" in lines[0]


@pytest.mark.parametrize("command", ["align", "detect", "convert"])
def test_a_file_that_is_no_checkpoint_is_refused_before_any_work(command, tmp_path, capsys):
    weights = tmp_path / "weights.pth"
    weights.write_text("not a checkpoint\n")
    photo = bad_inputs.photo(tmp_path)
    argv = {"align": ["align", photo, photo, "--out", tmp_path / "out", "--checkpoint", weights, *ALIGN],
            "detect": ["detect", photo, tmp_path, "--box", 0, 0, 32, 32, "--checkpoint", weights],
            "convert": ["convert", "artminer", weights, tmp_path / "out"]}[command]
    code, lines = run(capsys, argv)
    assert code == 1 and lines == [f"error: {weights}: not a PyTorch checkpoint (neither a torch.save zip archive "
                                   "nor a pickle)"]
