"""The two file layouts of ``torch.save``, read without PyTorch.

  zip     (PyTorch >= 1.6) ``<folder>/data.pkl`` the pickled object, ``<folder>/data/<key>`` one raw storage
          per key, ``<folder>/byteorder`` ("little" when absent); the folder is ``archive`` or the file's stem.
  legacy  (PyTorch < 1.6, ``_use_new_zipfile_serialization=False``) pickles one after another: the magic
          number, the protocol version (1001), ``sys_info``, the object, the sorted list of storage keys;
          then each storage as a little-endian int64 element count followed by its bytes.

Both return the unpickled object, whose tensors (``torch_tensors.TensorRef``) have their bytes attached, and
the byte order of the stored elements.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import Any

from artdup_jax.checkpoints.pickle_reader import RestrictedUnpickler, unpickle
from artdup_jax.checkpoints.torch_tensors import CheckpointError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


def read_torch_file(path: Path) -> tuple[Any, str]:
    """``(object, byteorder)`` of a ``torch.save`` file of either layout."""
    with open(path, "rb") as file:
        head = file.read(512)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    if head[257:262] == b"ustar":
        raise CheckpointError("a tar checkpoint (PyTorch < 0.1.10), which is not supported")
    return _read_legacy(path)


def _read_zip(path: Path) -> tuple[Any, str]:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        pickles = sorted(n for n in names if n.count("/") == 1 and n.endswith("/data.pkl"))
        if len(pickles) != 1:
            raise CheckpointError("a zip file, but not a torch.save archive (no single <folder>/data.pkl)")
        folder = pickles[0][: -len("data.pkl")]
        if folder + "constants.pkl" in names:
            raise CheckpointError("a TorchScript archive (torch.jit.save), not a checkpoint of tensors")
        byteorder = archive.read(folder + "byteorder").decode() if folder + "byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"unknown byte order {byteorder!r}")
        pickled = archive.read(pickles[0])

        def read(encoding):
            unpickler = RestrictedUnpickler(io.BytesIO(pickled), encoding)
            return unpickler.load(), unpickler.storages

        checkpoint, storages = unpickle(read)
        for storage in storages.values():
            name = f"{folder}data/{storage.key}"
            if name not in names:
                raise CheckpointError(f"storage {storage.key!r} is missing from the archive")
            storage.data = archive.read(name)
            if len(storage.data) < storage.numel * storage.element_size:
                raise CheckpointError(f"storage {storage.key!r} is truncated")
    return checkpoint, byteorder


def _read_legacy(path: Path) -> tuple[Any, str]:
    raw = path.read_bytes()

    def read(encoding):
        stream = io.BytesIO(raw)
        magic = RestrictedUnpickler(stream, encoding).load()
        if magic != LEGACY_MAGIC_NUMBER:
            raise CheckpointError("not a PyTorch checkpoint (neither a torch.save zip nor a legacy pickle)")
        protocol = RestrictedUnpickler(stream, encoding).load()
        if protocol != LEGACY_PROTOCOL_VERSION:
            raise CheckpointError(f"legacy checkpoint of unknown protocol version {protocol!r}")
        RestrictedUnpickler(stream, encoding).load()  # sys_info: storages are little-endian regardless
        unpickler = RestrictedUnpickler(stream, encoding)
        checkpoint = unpickler.load()
        keys = RestrictedUnpickler(stream, encoding).load()
        return checkpoint, unpickler.storages, keys, stream.tell()

    checkpoint, storages, keys, position = unpickle(read)
    if not isinstance(keys, list):
        raise CheckpointError("legacy checkpoint without its list of storage keys")
    data = memoryview(raw)
    for key in keys:
        key = key.decode("ascii") if isinstance(key, bytes) else str(key)
        storage = storages.get(key)
        if storage is None or storage.root is not None:
            raise CheckpointError(f"legacy checkpoint lists storage {key!r} that no tensor uses")
        if position + 8 > len(raw):
            raise CheckpointError(f"storage {key!r} is truncated")
        (numel,) = struct.unpack_from("<q", raw, position)
        nbytes = numel * storage.element_size
        if numel != storage.numel or position + 8 + nbytes > len(raw):
            raise CheckpointError(f"storage {key!r} is truncated or has the wrong size")
        storage.data = data[position + 8:position + 8 + nbytes]
        position += 8 + nbytes
    return checkpoint, "little"
