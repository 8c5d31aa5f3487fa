"""Tensors and storages as ``torch.save`` describes them, without PyTorch, and their numpy arrays.

A pickled tensor is a strided view of a storage: ``TensorRef`` (dtype, offset, shape, stride, all in
elements) over a ``Storage`` (raw bytes, attached by the container reader after unpickling).
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any, NamedTuple

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (one line; ``torch_reader`` prefixes the path)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The pickle names a global that a checkpoint never needs."""


# torch dtype name -> (numpy dtype of its stored elements, legacy storage class name or None)
DTYPES = {
    "float64": ("f8", "DoubleStorage"),
    "float32": ("f4", "FloatStorage"),
    "float16": ("f2", "HalfStorage"),
    "bfloat16": ("u2", "BFloat16Storage"),  # raw bits; widened to float32 in ``TensorRef.to_numpy``
    "int64": ("i8", "LongStorage"),
    "int32": ("i4", "IntStorage"),
    "int16": ("i2", "ShortStorage"),
    "int8": ("i1", "CharStorage"),
    "uint8": ("u1", "ByteStorage"),
    "bool": ("?", "BoolStorage"),
    "complex128": ("c16", "ComplexDoubleStorage"),
    "complex64": ("c8", "ComplexFloatStorage"),
    "uint16": ("u2", None),
    "uint32": ("u4", None),
    "uint64": ("u8", None),
}


class TorchDType(NamedTuple):
    """A ``torch.<name>`` dtype; ``numpy`` is the dtype of its stored elements. (A tuple: shared by every
    load, it must be immutable, and a pickle's BUILD cannot set attributes on it.)"""

    name: str
    numpy: np.dtype


class StorageType(NamedTuple):
    """``torch.FloatStorage`` & co (``dtype``) or ``torch.UntypedStorage`` (bytes: ``dtype`` None)."""

    name: str
    dtype: TorchDType | None

    @property
    def element_size(self) -> int:
        return self.dtype.numpy.itemsize if self.dtype else 1


class NoBuild:
    """Objects a pickle's BUILD opcode may not change (BUILD calls ``__setstate__`` when there is one)."""

    def __setstate__(self, state):
        raise CheckpointError(f"the pickle sets attributes of a {type(self).__name__}")


@dataclasses.dataclass(eq=False)
class Storage(NoBuild):
    """``numel`` elements of ``element_size`` bytes; ``data`` (bytes-like) is attached after unpickling.
    ``dtype`` is None for an ``UntypedStorage`` (its tensors name their dtype). A legacy storage view shares
    its root's bytes from ``root_offset`` (bytes)."""

    key: str
    dtype: TorchDType | None
    element_size: int
    numel: int
    data: Any = None
    root: Storage | None = None
    root_offset: int = 0

    def buffer(self) -> memoryview:
        if self.root is not None:
            start = self.root_offset
            return self.root.buffer()[start:start + self.numel * self.element_size]
        if self.data is None:
            raise CheckpointError(f"storage {self.key!r} has no data in the file")
        return memoryview(self.data)


@dataclasses.dataclass(eq=False)
class TensorRef(NoBuild):
    """A tensor as pickled: a strided view (in elements of ``dtype``) of a ``Storage``."""

    storage: Storage
    dtype: TorchDType
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    conj: bool = False
    neg: bool = False

    def to_numpy(self, byteorder: str = "little") -> np.ndarray:
        """A contiguous copy; float16 stays float16, bfloat16 becomes float32 (numpy has no bfloat16)."""
        stored = self.dtype.numpy.newbyteorder("<" if byteorder == "little" else ">")
        raw = self.storage.buffer()
        count = len(raw) // stored.itemsize
        if len(self.shape) != len(self.stride) or min(self.shape, default=1) < 0 or min(self.stride, default=0) < 0:
            raise CheckpointError(f"tensor with shape {self.shape} and stride {self.stride} is malformed")
        if 0 in self.shape:
            array = np.zeros(self.shape, stored)
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride))
            if self.offset < 0 or last >= count:
                raise CheckpointError(f"tensor of shape {self.shape} runs past its storage ({count} elements)")
            elements = np.frombuffer(raw, stored, count=count)[self.offset:]
            strides = tuple(s * stored.itemsize for s in self.stride)
            array = np.lib.stride_tricks.as_strided(elements, self.shape, strides, writeable=False).copy()
        array = array.astype(stored.newbyteorder("="), copy=False)
        if self.dtype.name == "bfloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        if self.conj:
            array = np.conj(array)
        if self.neg:
            array = np.negative(array)
        return array
