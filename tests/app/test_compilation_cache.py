"""The ``artdup`` command keeps compiled programs on disk and a second process reads them back instead of
compiling; opting out, a user's own JAX cache folder and an unwritable root leave it off. Each case runs in a
child process: the setting is process-wide."""

import os
import subprocess
import sys
from pathlib import Path

import jax

from artdup_jax.app.compilation_cache import compilation_cache_dir, enable_compilation_cache

REPO = Path(__file__).resolve().parents[2]

_CHILD = """
import jax, jax.numpy as jnp
from artdup_jax.app.compilation_cache import enable_compilation_cache
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event)
                                       if event == "/jax/compilation_cache/cache_hits" else None)
folder = enable_compilation_cache()
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # this tiny program compiles in < 1 s
jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.arange(5.0)).block_until_ready()
print(folder, len(hits), jax.config.jax_compilation_cache_dir)
"""


def _run(arguments: list[str], environ: dict, path_prefix: Path | None = None) -> subprocess.CompletedProcess:
    """A child Python with this checkout importable (after ``path_prefix``), without the user's JAX cache folder
    unless ``environ`` gives one; it must succeed."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("JAX_COMPILATION_CACHE_DIR", "ARTDUP_COMPILATION_CACHE")}
    path = str(REPO) if path_prefix is None else f"{path_prefix}{os.pathsep}{REPO}"
    env.update({"PYTHONPATH": path, **environ})
    out = subprocess.run([sys.executable, *arguments], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def _child(environ: dict) -> list[str]:
    return _run(["-c", _CHILD], environ).stdout.split()


def test_second_process_reads_the_compiled_program_back(tmp_path):
    environ = {"ARTDUP_CACHE": str(tmp_path), "ARTDUP_COMPILATION_CACHE": "1"}
    folder, hits, configured = _child(environ)
    assert Path(folder) == compilation_cache_dir(tmp_path) == tmp_path / "xla" and configured == folder
    assert hits == "0" and any((tmp_path / "xla").iterdir())
    assert int(_child(environ)[1]) >= 1  # the same programs again: read back, not compiled


def test_opt_out_user_folder_and_unwritable_root_leave_it_off(tmp_path):
    assert _child({"ARTDUP_CACHE": str(tmp_path), "ARTDUP_COMPILATION_CACHE": "0"})[0] == "None"
    assert not (tmp_path / "xla").exists()
    own = tmp_path / "mine"
    folder, _, configured = _child({"ARTDUP_CACHE": str(tmp_path), "JAX_COMPILATION_CACHE_DIR": str(own)})
    assert folder == "None" and configured == str(own) and not (tmp_path / "xla").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert _child({"ARTDUP_CACHE": str(blocker / "cache")})[0] == "None"


def test_without_filelock_it_stays_off(tmp_path):
    """JAX needs ``filelock`` to bound the cache; without it every cache read would print a warning."""
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text("import sys\nsys.modules['filelock'] = None\n")
    out = _run(["-c", _CHILD], {"ARTDUP_CACHE": str(tmp_path / "root")}, path_prefix=hidden)
    assert out.stdout.split()[0] == "None" and "filelock" not in out.stderr


def test_opt_out_in_this_process_changes_nothing():
    before = jax.config.jax_compilation_cache_dir
    assert enable_compilation_cache({"ARTDUP_COMPILATION_CACHE": "0"}) is None
    assert jax.config.jax_compilation_cache_dir == before


def test_the_command_turns_it_on(tmp_path):
    _run(["-m", "artdup_jax.cli", "weights", "list"], {"ARTDUP_CACHE": str(tmp_path)})
    assert (tmp_path / "xla").is_dir()
