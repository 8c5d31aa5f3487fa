"""The library's imports point down only: every ``import``, ``from ... import``, ``importlib.import_module`` and
``find_spec`` string of ``artdup_jax`` (lazy ones inside functions included) is checked against the layers.

  primitives  nn, geometry
  support     data, training, checkpoints, report, index, xla_cpu
  methods     ransac_flow, artminer, segswap, dense_contrast   (no method imports another)
  application app, convert, cli

The library never imports the repository's entry points (eval, train, configs, benchmarks), its PyTorch
baselines or its tests.
"""

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "artdup_jax"
LAYERS = {"nn": 0, "geometry": 0,
          "data": 1, "training": 1, "checkpoints": 1, "report": 1, "index": 1, "xla_cpu": 1,
          "ransac_flow": 2, "artminer": 2, "segswap": 2, "dense_contrast": 2,
          "app": 3, "convert": 3, "cli": 3}
METHODS = {name for name, layer in LAYERS.items() if layer == 2}
ENTRY_POINTS = ("eval", "train", "configs", "benchmarks", "baselines", "tests")
STRING_IMPORTERS = ("import_module", "find_spec")


def imported_names(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """``(line, dotted module name)`` of every import in ``tree`` (relative imports resolved in ``package``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names if module == "artdup_jax"]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in \
                STRING_IMPORTERS and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            found.append((node.lineno, node.args[0].value))
    return found


def library_modules() -> list[Path]:
    return sorted(LIBRARY.rglob("*.py"))


def part_of(module: str) -> str | None:
    """``artdup_jax.segswap.data.composer`` -> ``segswap``; None outside the library."""
    parts = module.split(".")
    return parts[1] if parts[0] == "artdup_jax" and len(parts) > 1 else None


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(LIBRARY)))
def test_imports_point_down(path):
    relative = path.relative_to(LIBRARY).with_suffix("")
    own = relative.parts[0] if len(relative.parts) > 1 else relative.name
    if own == "__init__":
        return  # the package's own docstring
    assert own in LAYERS, f"artdup_jax/{own} is in no layer: add it to LAYERS (and to the README's layout)"
    package = ".".join(("artdup_jax", *relative.parts[:-1]))
    problems = []
    for line, module in imported_names(ast.parse(path.read_text()), package):
        top = module.split(".")[0]
        if top in ENTRY_POINTS:
            problems.append(f"line {line}: imports {module} (the library never imports {top}/)")
            continue
        other = part_of(module)
        if other is None or other == own:
            continue
        if other not in LAYERS:
            problems.append(f"line {line}: imports {module}, in no layer")
        elif LAYERS[other] > LAYERS[own]:
            problems.append(f"line {line}: imports {module} from a higher layer ({other} above {own})")
        elif own in METHODS and other in METHODS:
            problems.append(f"line {line}: imports {module} (a method never imports another method)")
    assert not problems, f"{path.relative_to(LIBRARY.parent)}:\n  " + "\n  ".join(problems)


def test_the_checker_sees_lazy_and_string_imports():
    tree = ast.parse("def f():\n    import eval.hpatches\n    importlib.import_module('train.main')\n"
                     "    from artdup_jax import segswap\n")
    names = [name for _, name in imported_names(tree, "artdup_jax.artminer")]
    assert "eval.hpatches" in names and "train.main" in names and "artdup_jax.segswap" in names


def test_every_library_package_has_a_layer():
    packages = {p.name for p in LIBRARY.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in LIBRARY.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(LAYERS), sorted((packages | modules) - set(LAYERS))
