"""The README's claims that a test can check: two set-up commands, and a layout section that matches the tree."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_block_after(heading: str) -> str:
    section = README.split(heading, 1)[1]
    return section.split("```", 2)[1]


def test_exactly_two_set_up_commands_and_both_exist():
    lines = [line for line in code_block_after("## Set-up").splitlines()[1:] if line.strip()]
    assert len(lines) == 2, lines
    for line in lines:
        script = ROOT / line.split()[0]
        assert script.is_file() and script.stat().st_mode & 0o111, script


def layout_entries() -> tuple[list[str], list[str]]:
    """The layout block's top-level names (no indent) and the library's names (two spaces); deeper lines
    continue a description."""
    top, library = [], []
    for line in code_block_after("## Layout").splitlines()[1:]:
        indent = len(line) - len(line.lstrip(" "))
        if line.strip() and indent in (0, 2):
            (top if indent == 0 else library).append(line.split()[0])
    return top, library


def test_layout_names_every_package_and_every_name_exists():
    top, library = layout_entries()
    for name in top:
        assert (ROOT / name).exists(), f"README layout lists {name}, which is not in the tree"
    for name in library:
        assert (ROOT / "artdup_jax" / name).exists(), f"README layout lists artdup_jax/{name}, not in the tree"
    packages = {p.name + "/" for p in (ROOT / "artdup_jax").iterdir() if (p / "__init__.py").is_file()}
    modules = {p.name for p in (ROOT / "artdup_jax").glob("*.py") if p.name != "__init__.py"}
    assert packages | modules == set(library), f"README layout differs: {sorted((packages | modules) ^ set(library))}"
    assert {"artdup_jax/", "configs/", "train/", "eval/", "benchmarks/", "baselines/torch/", "tests/"} == set(top)
