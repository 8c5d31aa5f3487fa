"""A restricted unpickler for ``torch.save`` pickles: it rebuilds tensors and runs nothing else.

A pickle may name any importable callable and call it, so ``find_class`` resolves only the globals a
checkpoint of tensors and plain containers needs (``ALLOWED``), each to a stand-in of our own: tensors
become ``torch_tensors.TensorRef`` (storage, offset, shape, stride), storages ``torch_tensors.Storage``
whose bytes the container reader (``torch_formats``) attaches after unpickling. Any other global is refused
before it is imported. ``torch`` itself is never imported.
"""

from __future__ import annotations

import _compat_pickle
import pickle
from typing import Any, Callable

import numpy as np

from artdup_jax.checkpoints.torch_tensors import (
    DTYPES,
    CheckpointError,
    Storage,
    StorageType,
    TensorRef,
    TorchDType,
    UnsafeCheckpointError,
)

# Tensor kinds torch can pickle but a numpy array cannot hold; named in the error instead of "malicious".
_UNSUPPORTED_REBUILDS = {
    "_rebuild_qtensor": "quantized",
    "_rebuild_sparse_tensor": "sparse",
    "_rebuild_nested_tensor": "nested",
    "_rebuild_meta_tensor_no_storage": "meta",
    "_rebuild_wrapper_subclass": "tensor-subclass",
    "_rebuild_device_tensor_from_numpy": "device",
    "_rebuild_device_tensor_from_cpu_tensor": "device",
}
_UNSUPPORTED_STORAGES = ("QInt8Storage", "QInt32Storage", "QUInt8Storage", "QUInt4x2Storage", "QUInt2x4Storage")


# ---- stand-ins for the allowed globals: none of them runs anything but building these values. ----
# They are shared by every load, so none may be changed by a pickle: classes get a metaclass that refuses
# attribute assignment (a BUILD's slot state), functions are wrapped in ``_Function``.

class _Frozen(type):
    def __setattr__(cls, name, value):
        raise CheckpointError(f"the pickle sets attribute {name!r} of {cls.__name__}")


class _Function(metaclass=_Frozen):
    """An allowed callable, as the pickle sees it: callable, without attributes to set."""

    __slots__ = ("function",)

    def __init__(self, function):
        object.__setattr__(self, "function", function)

    def __setattr__(self, name, value):
        raise CheckpointError(f"the pickle sets attribute {name!r} of {self.function.__name__}")

    def __call__(self, *args):
        return self.function(*args)


class _StateDict(dict, metaclass=_Frozen):
    """``collections.OrderedDict``; its pickled attributes (``_metadata``: module versions) are not needed."""

    __slots__ = ()

    def __setstate__(self, state):
        pass


class _Namespace(dict, metaclass=_Frozen):
    """``argparse.Namespace`` (training arguments saved beside the weights), kept as a plain dict."""

    __slots__ = ()

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


class _TensorType(metaclass=_Frozen):
    """``torch.Tensor`` / ``torch.nn.Parameter`` as the type argument of ``_rebuild_from_type_v2``."""

    __slots__ = ()


class _LegacyTensor:
    """A tensor pickled by PyTorch < 0.4: ``torch.FloatTensor()``, then BUILD with (storage, offset, size,
    stride). The only stand-in a BUILD may fill, once."""

    __slots__ = ("tensor",)

    def __setstate__(self, state):
        if hasattr(self, "tensor") or not isinstance(state, tuple) or len(state) != 4:
            raise CheckpointError("a legacy tensor built from other than (storage, offset, size, stride)")
        self.tensor = _tensor(*state)


def tensor_ref(value) -> TensorRef | None:
    """The ``TensorRef`` an unpickled value stands for, or None when it is not a tensor."""
    if isinstance(value, _LegacyTensor):
        return getattr(value, "tensor", None)
    return value if isinstance(value, TensorRef) else None


def _tensor(storage, offset, shape, stride, metadata=None, dtype=None) -> TensorRef:
    if not isinstance(storage, Storage):
        raise CheckpointError(f"a tensor is rebuilt from {type(storage).__name__}, not a storage")
    dtype = dtype or storage.dtype
    if not isinstance(dtype, TorchDType):
        raise CheckpointError("a tensor's storage has no dtype")
    metadata = metadata if isinstance(metadata, dict) else {}
    return TensorRef(storage, dtype, int(offset), tuple(int(n) for n in shape), tuple(int(s) for s in stride),
                     conj=bool(metadata.get("conj")), neg=bool(metadata.get("neg")))


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    return _tensor(storage, storage_offset, size, stride, metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype,
                       metadata=None):
    if not isinstance(dtype, TorchDType):
        raise CheckpointError("_rebuild_tensor_v3 without a dtype")
    return _tensor(storage, storage_offset, size, stride, metadata, dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if tensor_ref(data) is None:
        raise CheckpointError(f"a parameter wraps {type(data).__name__}, not a tensor")
    return data


_REBUILDS = {f.__name__: _Function(f) for f in (_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3)}


def _rebuild_from_type_v2(func, new_type, args, state):
    """A tensor saved with Python attributes (or a subclass): rebuilt plainly, attributes dropped."""
    is_rebuild = any(func is f for f in _REBUILDS.values())
    if not is_rebuild or new_type is not _TensorType or not isinstance(args, tuple):
        raise CheckpointError("_rebuild_from_type_v2 on something other than a tensor")
    return func(*args)


def _size(dims=()):
    return tuple(int(n) for n in dims)


def _device(kind, index=None):
    return str(kind) if index is None else f"{kind}:{int(index)}"


def _encode(text, encoding="latin1"):
    """``_codecs.encode``: how protocol-2 pickles from Python 3 write ``bytes``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CheckpointError("_codecs.encode used for something other than bytes")
    return text.encode("latin1")


def _bytearray(data=b"", encoding=None):
    if isinstance(data, str) and encoding in ("latin1", "latin-1"):
        return bytearray(data.encode("latin1"))
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError("bytearray built from something other than bytes")
    return bytearray(data)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): _StateDict,
        ("argparse", "Namespace"): _Namespace,
        ("torch", "Size"): _Function(_size),
        ("torch", "device"): _Function(_device),
        ("torch", "Tensor"): _TensorType,
        ("torch.nn.parameter", "Parameter"): _TensorType,
        ("torch._utils", "_rebuild_parameter"): _Function(_rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state"): _Function(_rebuild_parameter),
        ("torch._tensor", "_rebuild_from_type_v2"): _Function(_rebuild_from_type_v2),
        ("torch", "UntypedStorage"): StorageType("UntypedStorage", None),
        ("torch.storage", "UntypedStorage"): StorageType("UntypedStorage", None),
        ("_codecs", "encode"): _Function(_encode),
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "bytearray"): _Function(_bytearray),
    }
    allowed.update({("torch._utils", name): f for name, f in _REBUILDS.items()})
    for name, (numpy_dtype, storage_name) in DTYPES.items():
        dtype = TorchDType(name, np.dtype(numpy_dtype))
        allowed["torch", name] = dtype
        if storage_name:  # saved on GPU by old releases as torch.cuda.FloatStorage
            allowed["torch", storage_name] = allowed["torch.cuda", storage_name] = StorageType(storage_name, dtype)
            tensor_name = storage_name.replace("Storage", "Tensor")  # the dtype comes from the storage
            allowed["torch", tensor_name] = allowed["torch.cuda", tensor_name] = _Function(_LegacyTensor)
    return allowed


ALLOWED = _allowed_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a ``torch.save`` pickle with ``ALLOWED`` globals only.

    ``persistent_load`` turns a storage's persistent id into a ``Storage`` (one per key, shared by its
    tensors); ``storages`` lists them for the container reader to fill.
    """

    def __init__(self, file, encoding: str = "utf-8"):
        super().__init__(file, encoding=encoding)
        self.storages: dict[str, Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names (__builtin__.set, copy_reg...)
            module, name = _compat_pickle.NAME_MAPPING[module, name]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        module = {"torch.tensor": "torch._tensor"}.get(module, module)  # renamed in PyTorch 1.8
        if (module, name) in ALLOWED:
            return ALLOWED[module, name]
        if module == "torch._utils" and name in _UNSUPPORTED_REBUILDS:
            raise CheckpointError(f"holds a {_UNSUPPORTED_REBUILDS[name]} tensor, which is not supported")
        if module in ("torch", "torch.cuda") and name in _UNSUPPORTED_STORAGES:
            raise CheckpointError(f"holds a quantized tensor ({name}), which is not supported")
        if module.startswith(("torch.nn.", "torchvision.models")):
            raise CheckpointError(f"holds a pickled torch.nn.Module ({module}.{name}), not a state_dict: "
                                  "re-save it with torch.save(model.state_dict(), path) where you trust it")
        raise UnsafeCheckpointError(f"refused: the checkpoint asks to run {module}.{name}, "
                                    "which a checkpoint never needs (it may be malicious)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid:
            raise CheckpointError(f"unknown persistent id {type(pid).__name__}")
        kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
        if kind == "module":
            raise CheckpointError("holds a pickled torch.nn.Module, not a state_dict: "
                                  "re-save it with torch.save(model.state_dict(), path) where you trust it")
        if kind != "storage" or len(pid) not in (5, 6):
            raise CheckpointError(f"unknown persistent id {kind!r}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None  # legacy format: (view key, offset, numel) or None
        if not isinstance(storage_type, StorageType):
            raise CheckpointError(f"storage of unknown type {type(storage_type).__name__}")
        storage = self._storage(_text(key), storage_type, int(numel))
        if view is not None:
            view_key, offset, view_numel = view
            view_key = _text(view_key)
            if view_key not in self.storages:
                self.storages[view_key] = Storage(view_key, storage.dtype, storage.element_size, int(view_numel),
                                                  root=storage, root_offset=int(offset) * storage.element_size)
            storage = self.storages[view_key]
        return storage

    def _storage(self, key: str, storage_type: StorageType, numel: int) -> Storage:
        if key not in self.storages:
            self.storages[key] = Storage(key, storage_type.dtype, storage_type.element_size, numel)
        return self.storages[key]


def _text(value) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def unpickle(read: Callable[[str], tuple[Any, Any]]) -> tuple[Any, Any]:
    """Runs ``read(encoding)``; Python 2 pickles whose byte strings are not UTF-8 are read again as latin-1
    (the released ArtMiner checkpoints), as ``torch.load(encoding="latin1")`` would."""
    try:
        return read("utf-8")
    except UnicodeDecodeError:
        return read("latin1")
