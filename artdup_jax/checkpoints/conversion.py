"""The conversion engine: a torch state_dict (numpy arrays) -> Flax Linen variables, checked key by key.

A ``Family`` describes one kind of checkpoint. The engine derives every expected torch key and shape from
the Flax model itself (``jax.eval_shape`` of ``model.init``), so no family carries a handwritten shape list:

  flax leaf (collection, *module_path, leaf)   e.g. ("params", "layer2_0", "downsample_conv", "kernel")
    -> torch key   family.torch_module(module_path) + "." + LEAF_RULES[(collection, leaf)].suffix
                   e.g. "layer2.0.downsample.0.weight"
    -> torch shape the inverse of the leaf's layout change (HWIO -> OIHW for conv kernels)

Every torch key must then be either expected or matched by one of the family's ignore patterns; anything
else (missing, unexpected, mis-shaped) raises ``CheckpointMismatchError`` listing all offenders at once.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Keys every family ignores: PyTorch >= 0.4 BN step counters, which Flax has no use for.
COMMON_IGNORE = (r"(^|\.)num_batches_tracked$",)


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes do not match the Flax model. ``problems`` lists one line per key."""

    def __init__(self, family: str, problems: Sequence[str]):
        self.family = family
        self.problems = list(problems)
        super().__init__(
            f"checkpoint does not match family {family!r} ({len(self.problems)} problem(s)):\n  "
            + "\n  ".join(self.problems)
        )


@dataclasses.dataclass(frozen=True)
class LeafRule:
    """How one kind of Flax leaf is stored by PyTorch."""

    suffix: str  # torch parameter/buffer name
    to_flax: Callable[[np.ndarray], np.ndarray]  # torch layout -> Flax layout
    torch_shape: Callable[[tuple[int, ...]], tuple[int, ...]]  # Flax shape -> torch shape


def _kernel_to_flax(w: np.ndarray) -> np.ndarray:
    if w.ndim == 4:  # conv OIHW -> HWIO
        return np.transpose(w, (2, 3, 1, 0))
    if w.ndim == 2:  # linear (out, in) -> Dense (in, out)
        return np.transpose(w)
    raise ValueError(f"no kernel layout rule for a {w.ndim}-d tensor")


def _kernel_torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 4:
        h, w, i, o = shape
        return (o, i, h, w)
    if len(shape) == 2:
        return (shape[1], shape[0])
    raise ValueError(f"no kernel layout rule for a {len(shape)}-d kernel")


def _same(x):
    return x


LEAF_RULES: dict[tuple[str, str], LeafRule] = {
    ("params", "kernel"): LeafRule("weight", _kernel_to_flax, _kernel_torch_shape),
    ("params", "scale"): LeafRule("weight", _same, _same),
    ("params", "bias"): LeafRule("bias", _same, _same),
    ("batch_stats", "mean"): LeafRule("running_mean", _same, _same),
    ("batch_stats", "var"): LeafRule("running_var", _same, _same),
}


def strip_prefix(prefix: str) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """A ``normalise`` hook that removes ``prefix`` from the keys that carry it (others pass unchanged)."""

    def normalise(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}

    return normalise


def rename_keys(family: str, state_dict: Mapping[str, np.ndarray],
                rename: Callable[[str], str]) -> dict[str, np.ndarray]:
    """``{rename(key): value}``; two keys renamed alike raise ``CheckpointMismatchError`` naming both."""
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    problems = []
    for key, value in state_dict.items():
        name = rename(key)
        if name in out:
            problems.append(f"duplicate: {origin[name]} and {key} are both {name}")
        out[name], origin[name] = value, key
    if problems:
        raise CheckpointMismatchError(family, problems)
    return out


@dataclasses.dataclass(frozen=True)
class Family:
    """One checkpoint family. ``options`` are the keyword arguments of ``build_model`` (e.g. last_stage).

    build_model(**options) -> the Flax Linen module the variables are for.
    torch_module(module_path) -> torch module name, e.g. ("layer1_0", "bn1") -> "layer1.0.bn1".
    normalise(state_dict) -> state_dict with canonical keys (prefixes stripped, sub-dict selected...).
    ignore(**options) -> regexes (``re.search`` on canonical keys) of torch keys that are known and unused.
      Only list keys you know about; an unknown extra key is an error, not something to drop.
    init_shape: input shape for ``eval_shape`` of ``model.init`` (only shapes, nothing is computed).
    sources: for a family stored as several files, one name per file, in the order the files are given;
      each file's keys get its name and "." as prefix before ``normalise`` (empty: a single file, no prefix).
    """

    name: str
    build_model: Callable[..., nn.Module]
    torch_module: Callable[[tuple[str, ...]], str]
    ignore: Callable[..., Sequence[str]] = lambda **options: ()
    normalise: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]] = dict
    init_shape: tuple[int, ...] = (1, 64, 64, 3)
    description: str = ""
    sources: tuple[str, ...] = ()


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def get_family(family: str | Family) -> Family:
    if isinstance(family, Family):
        return family
    try:
        return FAMILIES[family]
    except KeyError:
        raise KeyError(f"unknown checkpoint family {family!r}; known: {sorted(FAMILIES)}") from None


def build_model(family: str | Family, **options) -> nn.Module:
    """The Flax module that ``convert_state_dict(family, ..., **options)`` produces variables for."""
    return get_family(family).build_model(**options)


@dataclasses.dataclass(frozen=True)
class _Target:
    path: tuple[str, ...]  # (collection, *module_path, leaf)
    shape: tuple[int, ...]  # Flax shape
    dtype: Any
    torch_shape: tuple[int, ...]
    rule: LeafRule


def _targets(family: Family, options: dict) -> dict[str, _Target]:
    """torch key -> where and how it lands in the Flax variables, from the model's abstract init."""
    model = family.build_model(**options)
    abstract = jax.eval_shape(
        functools.partial(model.init, train=False),
        jax.random.key(0),
        jax.ShapeDtypeStruct(family.init_shape, jnp.float32),
    )
    targets: dict[str, _Target] = {}
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(abstract)[0]:
        path = tuple(k.key for k in key_path)
        collection, module_path, leaf_name = path[0], path[1:-1], path[-1]
        rule = LEAF_RULES.get((collection, leaf_name))
        if rule is None:
            raise NotImplementedError(f"family {family.name!r}: no torch rule for Flax leaf {'/'.join(path)}")
        torch_key = f"{family.torch_module(module_path)}.{rule.suffix}"
        if torch_key in targets:
            raise RuntimeError(f"family {family.name!r}: two Flax leaves map to torch key {torch_key!r}")
        targets[torch_key] = _Target(path, tuple(leaf.shape), leaf.dtype, tuple(rule.torch_shape(leaf.shape)), rule)
    return targets


def expected_torch_shapes(family: str | Family, **options) -> dict[str, tuple[int, ...]]:
    """torch key -> shape that a checkpoint of this family must provide (ignored keys excluded)."""
    return {k: t.torch_shape for k, t in _targets(get_family(family), options).items()}


def convert_state_dict(family: str | Family, state_dict: Mapping[str, Any], **options) -> dict:
    """A torch state_dict (name -> numpy array) -> Flax variables ``{"params": ..., "batch_stats": ...}``.

    Arrays come back as numpy, in the model's parameter dtype (float32). Raises ``CheckpointMismatchError``
    if a key is missing, unexpected (and not on the family's ignore list) or has the wrong shape.
    """
    family = get_family(family)
    state_dict = family.normalise({k: np.asarray(v) for k, v in state_dict.items()})
    targets = _targets(family, options)
    ignore = [re.compile(p) for p in (*COMMON_IGNORE, *family.ignore(**options))]

    problems = []
    for key, target in targets.items():
        if key not in state_dict:
            problems.append(f"missing: {key} (expected shape {target.torch_shape})")
        elif state_dict[key].shape != target.torch_shape:
            problems.append(
                f"wrong shape: {key} (expected {target.torch_shape}, got {tuple(state_dict[key].shape)})"
            )
    for key in sorted(set(state_dict) - set(targets)):
        if not any(p.search(key) for p in ignore):
            problems.append(f"unexpected: {key} (shape {tuple(state_dict[key].shape)})")
    if problems:
        raise CheckpointMismatchError(family.name, problems)

    variables: dict = {}
    for key, target in targets.items():
        node = variables
        for name in target.path[:-1]:
            node = node.setdefault(name, {})
        value = target.rule.to_flax(state_dict[key]).astype(target.dtype)
        node[target.path[-1]] = np.ascontiguousarray(value)
    return variables
