"""The released-weights catalogue, the cache (fetch, convert once, resolve by name) and the offline path."""

import io
import os
import re
import urllib.parse
import zipfile

import numpy as np
import pytest

from artdup_jax.checkpoints import cache, catalogue
from artdup_jax.checkpoints.download import DownloadPolicy
from tests.checkpoints.loopback import closed_port_url, serving

NO_RETRY = DownloadPolicy(timeout_s=5, retries=0, backoff_s=0.01)


def test_catalogue_has_the_released_weights_of_all_three_methods():
    methods = {weights.method for weights in catalogue.RELEASED.values()}
    assert methods == set(catalogue.METHODS)
    names = set(catalogue.RELEASED)
    assert {"artminer-brueghel", "artminer-ltll", "artminer-oxford", "artminer-imagenet", "ransac-flow-megadepth",
            "ransac-flow-kitti-testft", "ransac-flow-robotcar-testft", "ransac-flow-moco-resnet50",
            "segswap-hard-mining-neg5"} <= names


def test_catalogue_urls_are_well_formed():
    for name, weights in catalogue.RELEASED.items():
        url = urllib.parse.urlsplit(weights.url)
        assert url.scheme == "https" and url.netloc and url.path.endswith(weights.served_name), name
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) and weights.name == name
        assert weights.file_name.endswith((".pth", ".pth.tar")), name
        if weights.sha256_prefix:  # torch.hub convention: NAME-<first 8 hex digits of sha256>.pth
            assert weights.file_name.endswith(f"-{weights.sha256_prefix}.pth"), name
        if weights.member:
            assert weights.served_name.endswith(".zip") and weights.member == weights.file_name, name


def test_every_catalogue_family_is_registered():
    import artdup_jax.convert

    for name, weights in catalogue.RELEASED.items():
        assert weights.family in artdup_jax.convert.FAMILIES, name


def test_mirror_replaces_every_url(monkeypatch):
    monkeypatch.setenv(catalogue.MIRROR_ENV, "http://mirror.example/weights/")
    megadepth = catalogue.RELEASED["ransac-flow-megadepth"]
    assert megadepth.download_url() == "http://mirror.example/weights/model.zip"
    assert catalogue.RELEASED["artminer-ltll"].download_url() == "http://mirror.example/weights/ltllModel.pth"
    assert megadepth.download_url(mirror="") == megadepth.url  # an explicit empty mirror: the official URL


def test_cache_root_follows_artdup_cache_then_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "artdup-jax"
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "mine"))
    assert cache.cache_root() == tmp_path / "mine"


def torchvision_resnet18_shapes() -> dict[str, tuple[int, ...]]:
    """torchvision's ResNet-18 state_dict names and shapes, stem to layer3 (the part the family converts)."""
    def bn(name, c):
        return {f"{name}.{leaf}": (c,) for leaf in ("weight", "bias", "running_mean", "running_var")}

    shapes = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    for stage, (c_in, c) in enumerate([(64, 64), (64, 128), (128, 256)], start=1):
        for block in (0, 1):
            prefix, c_block = f"layer{stage}.{block}", c_in if block == 0 else c
            shapes |= {f"{prefix}.conv1.weight": (c, c_block, 3, 3), **bn(f"{prefix}.bn1", c),
                       f"{prefix}.conv2.weight": (c, c, 3, 3), **bn(f"{prefix}.bn2", c)}
            if block == 0 and stage > 1:
                shapes |= {f"{prefix}.downsample.0.weight": (c, c_in, 1, 1), **bn(f"{prefix}.downsample.1", c)}
    return shapes


def torch_saved_resnet18(seed: int) -> tuple[bytes, dict[str, np.ndarray]]:
    """A torchvision-layout ResNet-18 checkpoint with random weights, written by torch.save (bytes, numpy dict)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    state_dict = {k: rng.standard_normal(shape).astype(np.float32)
                  for k, shape in torchvision_resnet18_shapes().items()}
    state_dict = {k: np.abs(v) if k.endswith("running_var") else v for k, v in state_dict.items()}
    buffer = io.BytesIO()
    torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, buffer)
    return buffer.getvalue(), state_dict


@pytest.fixture(scope="module")
def resnet18_bytes():
    return torch_saved_resnet18(seed=0)


@pytest.fixture
def released_resnet18(monkeypatch):
    weights = catalogue.ReleasedWeights("test-resnet18", "artminer", "resnet18",
                                        "https://example.invalid/models/resnet18-test.pth", "resnet18-test.pth",
                                        "random torchvision ResNet-18", "tests")
    monkeypatch.setitem(catalogue.RELEASED, weights.name, weights)
    return weights


def assert_converted_from(path, state_dict):
    from artdup_jax.checkpoints import load_weights

    variables = load_weights(path, "resnet18")
    np.testing.assert_array_equal(variables["params"]["conv1"]["kernel"],
                                  state_dict["conv1.weight"].transpose(2, 3, 1, 0))  # OIHW -> HWIO
    np.testing.assert_array_equal(variables["batch_stats"]["layer3_1"]["bn2"]["var"],
                                  state_dict["layer3.1.bn2.running_var"])


def test_weights_by_name_are_fetched_and_converted_once(tmp_path, resnet18_bytes, released_resnet18):
    data, state_dict = resnet18_bytes
    with serving({"resnet18-test.pth": data}) as server:
        path = cache.resolve_weights("test-resnet18", "resnet18", root=tmp_path, mirror=server.url("redirect"),
                                     policy=NO_RETRY)
        again = cache.resolve_weights("test-resnet18", "resnet18", root=tmp_path, mirror=server.url(),
                                      policy=NO_RETRY)
        assert server.sent["resnet18-test.pth"] == len(data)  # once: the second call used the converted folder
    entry = cache.locate("test-resnet18", tmp_path)
    assert path == again == str(entry.converted) and entry.checkpoint.read_bytes() == data
    assert_converted_from(path, state_dict)


def test_offline_error_names_the_url_and_the_path_then_placing_the_file_by_hand_works(
        tmp_path, resnet18_bytes, released_resnet18):
    data, state_dict = resnet18_bytes
    offline = closed_port_url()
    with pytest.raises(cache.WeightsUnavailableError) as error:
        cache.resolve_weights("test-resnet18", "resnet18", root=tmp_path, mirror=offline, policy=NO_RETRY)
    message = str(error.value)
    entry = cache.locate("test-resnet18", tmp_path)
    assert f"{offline}/resnet18-test.pth" in message and str(entry.checkpoint) in message
    assert "\n" not in message

    entry.checkpoint.write_bytes(data)  # what the user does by hand
    path = cache.resolve_weights("test-resnet18", "resnet18", root=tmp_path, mirror=offline, policy=NO_RETRY)
    assert_converted_from(path, state_dict)
    assert entry.recorded_sha256() is not None  # recorded on first use, later copies must match


def test_a_checkpoint_replaced_by_hand_is_converted_again(tmp_path, resnet18_bytes, released_resnet18):
    entry = cache.locate("test-resnet18", tmp_path)
    entry.folder.mkdir(parents=True)
    entry.checkpoint.write_bytes(resnet18_bytes[0])
    cache.resolve_weights("test-resnet18", "resnet18", root=tmp_path, mirror=closed_port_url(), policy=NO_RETRY)
    other, other_state_dict = torch_saved_resnet18(seed=1)
    entry.checkpoint.write_bytes(other)
    entry.record.unlink()  # what the refusal of a copy that does not match its record tells the user to do
    path = cache.resolve_weights("test-resnet18", "resnet18", root=tmp_path, mirror=closed_port_url(),
                                 policy=NO_RETRY)
    assert_converted_from(path, other_state_dict)


def test_offline_error_for_an_archive_member_names_both_places(tmp_path):
    with pytest.raises(cache.WeightsUnavailableError) as error:
        cache.fetch("ransac-flow-kitti-testft", root=tmp_path, mirror=closed_port_url(), policy=NO_RETRY)
    entry = cache.locate("ransac-flow-kitti-testft", tmp_path)
    assert str(entry.checkpoint) in str(error.value) and str(entry.archive) in str(error.value)
    assert "model.zip" in str(error.value)


def test_an_archive_placed_by_hand_is_used_offline(tmp_path, monkeypatch):
    weights = catalogue.ReleasedWeights("test-member", "ransac_flow", "ransac_flow", "https://example.invalid/m.zip",
                                        "b.pth", "test", "tests", remote_name="m.zip", member="b.pth")
    monkeypatch.setitem(catalogue.RELEASED, weights.name, weights)
    entry = cache.locate(weights, tmp_path)
    entry.archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(entry.archive, "w") as bundle:
        bundle.writestr("pretrained/b.pth", b"member bytes")  # a folder inside the zip is fine
    fetched = cache.fetch(weights.name, root=tmp_path, mirror=closed_port_url(), policy=NO_RETRY)
    assert entry.checkpoint.read_bytes() == b"member bytes" and fetched.how == "extracted from m.zip"


def test_weights_of_another_family_are_refused():
    with pytest.raises(cache.WeightsFamilyError, match="ransac-flow-megadepth"):
        cache.resolve_weights("artminer-ltll", "ransac_flow")


def test_existing_paths_pass_unchanged_and_unknown_names_list_the_released(tmp_path):
    assert cache.resolve_weights(str(tmp_path), "artminer") == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        cache.resolve_weights(str(tmp_path / "nothere.pth"), "artminer")
    with pytest.raises(catalogue.UnknownWeightsError, match="artminer-brueghel"):
        cache.resolve_weights("artminer-bruegel", "artminer")


def test_weights_list_and_fetch_report_the_cache(tmp_path, resnet18_bytes, released_resnet18):
    from artdup_jax.app.weights import fetch_weights, list_weights, table

    data, state_dict = resnet18_bytes
    rows = {row.name: row for row in list_weights(cache_dir=tmp_path)}
    assert rows["test-resnet18"].cached == "" and rows["artminer-ltll"].sha256 == "first fetch"
    assert rows["artminer-imagenet"].sha256 == "5c106cde..."
    with serving({"resnet18-test.pth": data}) as server:
        result = fetch_weights("test-resnet18", cache_dir=tmp_path, mirror=server.url(), policy=NO_RETRY)
    assert result.first_record and os.path.isdir(result.converted)
    assert_converted_from(result.converted, state_dict)
    row = {row.name: row for row in list_weights(cache_dir=tmp_path)}["test-resnet18"]
    assert row.cached == "converted" and row.size_bytes == len(data) and row.sha256 == result.sha256
    assert any("first complete fetch records it" in line for line in table(list(rows.values())))
