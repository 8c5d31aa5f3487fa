"""read_state_dict without PyTorch: parity with torch.load on every family's layout, malicious pickles refused."""

import argparse
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
from typing import Mapping

import numpy as np
import pytest
import torch
import torchvision

from artdup_jax.checkpoints.pickle_reader import ALLOWED
from artdup_jax.checkpoints.torch_reader import CheckpointError, UnsafeCheckpointError, read_state_dict

FORMATS = {"zip": True, "legacy": False}  # name -> torch.save's _use_new_zipfile_serialization


def torch_reference(path, **load_args) -> dict[str, np.ndarray]:
    """The reference: torch.load, then the documented rules (state_dict/model entry, "."-flattening,
    tensors only, bfloat16 as float32)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, **load_args)
    for entry in ("state_dict", "model"):
        if isinstance(checkpoint.get(entry), Mapping):
            checkpoint = checkpoint[entry]
            break
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, torch.Tensor):
                flat[f"{prefix}{key}"] = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
            elif isinstance(value, Mapping):
                walk(value, f"{prefix}{key}.")

    walk(checkpoint, "")
    return flat


def assert_same_as_torch(path, **load_args):
    expected, got = torch_reference(path, **load_args), read_state_dict(path)
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].flags.c_contiguous, key
        np.testing.assert_array_equal(got[key], value, err_msg=key)


def save(obj, path, fmt):
    torch.save(obj, path, _use_new_zipfile_serialization=FORMATS[fmt])
    return path


def conv_bn(in_channels, out_channels):
    return torch.nn.Sequential(torch.nn.Conv2d(in_channels, out_channels, 3), torch.nn.BatchNorm2d(out_channels))


@pytest.fixture(scope="module")
def resnet18_state_dict():
    torch.manual_seed(0)
    return torchvision.models.resnet18().state_dict()


@pytest.fixture(params=list(FORMATS))
def fmt(request):
    return request.param


def test_torchvision_resnet18_state_dict_matches_torch_load(resnet18_state_dict, tmp_path, fmt):
    assert_same_as_torch(save(resnet18_state_dict, tmp_path / "resnet18.pth", fmt))


def test_moco_checkpoint_is_read_from_its_state_dict_entry(tmp_path, fmt):
    torch.manual_seed(1)
    encoder = conv_bn(3, 8).state_dict()
    model = {f"module.encoder_{q}.{k}": v.clone() for q in "qk" for k, v in encoder.items()}
    model |= {"module.queue": torch.randn(16, 32), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    params = [torch.nn.Parameter(torch.randn(4, 3))]
    optimiser = torch.optim.SGD(params, lr=0.03, momentum=0.9)
    params[0].grad = torch.ones(4, 3)
    optimiser.step()
    checkpoint = {"epoch": 200, "arch": "resnet50", "state_dict": model, "optimizer": optimiser.state_dict()}
    path = save(checkpoint, tmp_path / "checkpoint_0199.pth.tar", fmt)
    assert_same_as_torch(path)
    assert "module.encoder_q.0.weight" in read_state_dict(path)


def test_ransac_flow_dict_of_four_state_dicts_is_flattened(resnet18_state_dict, tmp_path, fmt):
    torch.manual_seed(2)
    features = dict(resnet18_state_dict) | {"maxpool.1.filt": torch.ones(64, 1, 3, 3) / 16}
    decoder = torch.nn.ModuleDict({"conv1": torch.nn.Conv2d(49, 8, 3), "bn1": torch.nn.BatchNorm2d(8)})
    checkpoint = {"netFeatCoarse": features, "netCorr": {}, "netFlowCoarse": decoder.state_dict(),
                  "netMatch": decoder.state_dict()}
    path = save(checkpoint, tmp_path / "MegaDepth_Theta1_Eta001_Grad1_0.774.pth", fmt)
    assert_same_as_torch(path)
    state_dict = read_state_dict(path)
    assert {"netFeatCoarse.maxpool.1.filt", "netFlowCoarse.bn1.running_var", "netMatch.conv1.weight"} <= set(state_dict)


def test_segswap_checkpoint_keeps_adam_state_under_optimiser(tmp_path, fmt):
    torch.manual_seed(3)
    backbone = conv_bn(3, 8)
    encoder = torch.nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16)
    optimiser = torch.optim.Adam(list(backbone.parameters()) + list(encoder.parameters()), lr=1e-4)
    encoder(torch.randn(5, 1, 8)).sum().backward()
    optimiser.step()
    checkpoint = {"backbone": backbone.state_dict(), "encoder": encoder.state_dict(),
                  "optimiser": optimiser.state_dict()}
    path = save(checkpoint, tmp_path / "hard_mining_neg5.pth", fmt)
    assert_same_as_torch(path)
    state_dict = read_state_dict(path)
    assert {"encoder.self_attn.in_proj_weight", "optimiser.state.4.exp_avg_sq"} <= set(state_dict)


def test_half_precision_stays_float16_and_bfloat16_becomes_float32(tmp_path, fmt):
    torch.manual_seed(4)
    checkpoint = {"half": torch.randn(3, 5).half(), "bf16": torch.randn(3, 5).bfloat16(),
                  "bf16_scalar": torch.tensor(-2.5, dtype=torch.bfloat16)}
    path = save(checkpoint, tmp_path / "low_precision.pth", fmt)
    assert_same_as_torch(path)
    state_dict = read_state_dict(path)
    assert (state_dict["half"].dtype, state_dict["bf16"].dtype) == (np.float16, np.float32)


def test_views_sharing_one_storage_keep_their_offsets_and_strides(tmp_path, fmt):
    base = torch.arange(120, dtype=torch.float64).reshape(4, 5, 6)
    checkpoint = {
        "base": base,
        "transposed": base.transpose(0, 2),
        "slice": base[1, :, 2:5],
        "every_other": base[:, ::2, 1::3],
        "broadcast": base[0:1, 0:1].expand(3, 4, 6),
        "empty": base[:, :0],
        "ints": torch.arange(10, dtype=torch.int32)[3:9:2],
        "flags": torch.tensor([True, False, True])[1:],
        "complex": torch.randn(3, 2, dtype=torch.complex64).t(),
    }
    assert_same_as_torch(save(checkpoint, tmp_path / "views.pth", fmt))


class PyTorch03Tensor:
    """Pickles ``tensor`` as PyTorch < 0.4 did (torchvision's 2017 ResNet files): ``torch.FloatTensor()``
    then ``__setstate__((storage, offset, size, stride))``."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        t = self.tensor
        tensor_type = getattr(torch, t.type().split(".")[-1])  # torch.FloatTensor, torch.LongTensor...
        return tensor_type, (), (t.storage(), t.storage_offset(), tuple(t.size()), t.stride())


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_pre_0_4_tensor_pickles_are_read(tmp_path, fmt):
    base = torch.randn(4, 6)
    checkpoint = {"conv1.weight": PyTorch03Tensor(base.t()), "bn1.running_mean": PyTorch03Tensor(base[1, 2:]),
                  "layer1.0.num_batches_tracked": PyTorch03Tensor(torch.arange(3))}
    assert_same_as_torch(save(checkpoint, tmp_path / "resnet18-5c106cde.pth", fmt))


def test_any_archive_folder_name_is_read(resnet18_state_dict, tmp_path):
    path = save({"conv1.weight": resnet18_state_dict["conv1.weight"]}, tmp_path / "original.pth", "zip")
    renamed = tmp_path / "renamed.pth"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(renamed, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            name = info.filename.split("/", 1)
            target.writestr("resnet18_moco/" + name[1] if len(name) == 2 else info.filename, source.read(info))
    assert_same_as_torch(renamed)


class Python2Pickler(pickle._Pickler):
    """Writes ``str`` as Python 2 byte strings (SHORT_BINSTRING), as the released ArtMiner files hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_str(self, obj):
        data = obj.encode("latin1")
        assert len(data) < 256
        self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        self.memoize(obj)

    dispatch[str] = save_str


PYTHON2_PICKLE = types.ModuleType("python2_pickle")  # torch.save's pickle_module: Pickler and dump
PYTHON2_PICKLE.Pickler = Python2Pickler
PYTHON2_PICKLE.dump = lambda obj, file, protocol: Python2Pickler(file, protocol).dump(obj)


@pytest.mark.filterwarnings("ignore:pickle_load_args only works")  # torch does pass encoding on
def test_python2_pickle_with_latin1_byte_strings(resnet18_state_dict, tmp_path):
    state_dict = {k: v for k, v in resnet18_state_dict.items() if k.startswith(("conv1", "bn1", "layer1.0"))}
    checkpoint = {"state_dict": state_dict, "note": "Br\xfceghel caf\xe9", "tags": {"a", "b"},
                  "args": argparse.Namespace(lr=0.1, dataset="Br\xfceghel")}
    path = tmp_path / "brueghel_py2.pth"
    torch.save(checkpoint, path, pickle_module=PYTHON2_PICKLE, pickle_protocol=2,
               _use_new_zipfile_serialization=False)
    with pytest.raises(UnicodeDecodeError):  # not UTF-8: only latin-1 reads it
        with torch.serialization.safe_globals([argparse.Namespace]):
            torch.load(path, weights_only=True)
    with torch.serialization.safe_globals([argparse.Namespace]):
        assert_same_as_torch(path, encoding="latin1")


def test_training_arguments_namespace_is_dropped(resnet18_state_dict, tmp_path, fmt):
    checkpoint = {"model": {"module.conv1.weight": resnet18_state_dict["conv1.weight"]},
                  "args": argparse.Namespace(lr=0.03, arch="resnet50")}
    path = save(checkpoint, tmp_path / "resnet50_moco.pth", fmt)
    assert list(read_state_dict(path)) == ["module.conv1.weight"]


class RunsCommand:
    """Unpickling this runs ``command`` through ``function``: what a malicious .pth does."""

    def __init__(self, function, command):
        self.function, self.command = function, command

    def __reduce__(self):
        return self.function, (self.command,)


@pytest.mark.parametrize("function, refused", [(os.system, "posix.system"), (eval, "builtins.eval")])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, fmt, function, refused):
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if function is os.system else f"open({str(marker)!r}, 'w').close()"
    path = save({"weight": torch.ones(2), "payload": RunsCommand(function, command)}, tmp_path / "evil.pth", fmt)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_state_dict(path)
    assert str(info.value) == (f"{path}: refused: the checkpoint asks to run {refused}, "
                               "which a checkpoint never needs (it may be malicious)")
    assert not marker.exists()


def test_dotted_global_through_an_allowed_module_is_refused(tmp_path):
    # Protocol 4 resolves "a.b" names by getattr: _rebuild_tensor_v2.__globals__ would reach builtins.
    module, name = b"torch._utils", b"_rebuild_tensor_v2.__globals__"
    payload = (pickle.PROTO + b"\x04" + pickle.SHORT_BINUNICODE + bytes([len(module)]) + module
               + pickle.SHORT_BINUNICODE + bytes([len(name)]) + name + pickle.STACK_GLOBAL + pickle.STOP)
    path = tmp_path / "dotted.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    with pytest.raises(UnsafeCheckpointError, match="torch._utils._rebuild_tensor_v2.__globals__"):
        read_state_dict(path)


def test_pickled_module_is_refused_with_a_clear_error(tmp_path, fmt):
    path = save(torch.nn.Linear(2, 3), tmp_path / "model.pth", fmt)
    with pytest.raises(CheckpointError, match=r"pickled torch\.nn\.Module .*state_dict"):
        read_state_dict(path)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit is deprecated, but such files exist
def test_torchscript_archive_is_refused(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 3)), path)
    with pytest.raises(CheckpointError, match="TorchScript"):
        read_state_dict(path)


def test_truncated_file_is_a_one_line_error(resnet18_state_dict, tmp_path, fmt):
    path = save({"w": resnet18_state_dict["conv1.weight"]}, tmp_path / "full.pth", fmt)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError) as info:
        read_state_dict(truncated)
    assert str(info.value).startswith(f"{truncated}: ") and "\n" not in str(info.value)


def test_reader_works_with_torch_blocked(resnet18_state_dict, tmp_path):
    paths = [save(resnet18_state_dict, tmp_path / f"resnet18_{fmt}.pth", fmt) for fmt in FORMATS]
    code = (
        "import sys; sys.modules['torch'] = None\n"  # makes `import torch` raise ImportError
        "import numpy as np\n"
        "from artdup_jax.checkpoints.torch_reader import read_state_dict\n"
        "for path in sys.argv[1:]:\n"
        "    np.savez(path + '.npz', **read_state_dict(path))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    for path in paths:
        expected = torch_reference(path)
        with np.load(f"{path}.npz") as got:
            assert list(got) == list(expected)
            for key, value in expected.items():
                np.testing.assert_array_equal(got[key], value, err_msg=key)


def test_legacy_storage_header_must_match_its_tensor(tmp_path):
    path = save({"w": torch.ones(4)}, tmp_path / "w.pth", "legacy")
    raw = bytearray(path.read_bytes())
    header = raw.rfind(struct.pack("<q", 4))
    raw[header:header + 8] = struct.pack("<q", 3)
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="wrong size"):
        read_state_dict(path)


def pickle_setting_attribute(module: str, name: str) -> bytes:
    """A pickle whose BUILD opcode sets attribute ``x`` on the global ``module.name`` (slot state)."""
    return (pickle.PROTO + b"\x02" + pickle.GLOBAL + f"{module}\n{name}\n".encode() + pickle.NONE
            + pickle.EMPTY_DICT + pickle.SHORT_BINUNICODE + b"\x01x" + pickle.BININT1 + b"\x01" + pickle.SETITEM
            + pickle.TUPLE2 + pickle.BUILD + pickle.STOP)


@pytest.mark.parametrize("module, name", [("torch", "Size"), ("torch", "Tensor"), ("torch", "float32"),
                                          ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2")])
def test_a_pickle_cannot_change_the_allowed_globals(tmp_path, module, name):
    path = tmp_path / "sets_attribute.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_setting_attribute(module, name))
    with pytest.raises(CheckpointError):
        read_state_dict(path)
    assert not hasattr(ALLOWED[module, name], "x")
