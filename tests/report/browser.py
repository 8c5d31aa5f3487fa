"""Open a report in headless Chromium and say which images failed to load and which scripts failed.

A copy of the page with a probe script first in <head> is dumped with ``--dump-dom``: the probe records every
error event (script errors, and resources that failed to load) and, on ``load``, each <img> whose
``naturalWidth`` is 0, into a <pre> element that the dumped DOM carries back.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ARTDUP_CHROMIUM", "/usr/bin/chromium")
# As root on a machine without network: no sandbox, and nothing that phones home.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
PROBE_ID = "artdup-browser-check"
PROBE = f"""<script>
window.__artdupErrors = [];
window.addEventListener("error", function (e) {{
  var t = e.target;
  var what = t && t !== window ? "failed to load: " + (t.src || t.href || t.tagName) : String(e.message);
  window.__artdupErrors.push(what);
}}, true);
window.addEventListener("load", function () {{
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) {{ return !(i.complete && i.naturalWidth > 0); }})
                     .map(function (i) {{ return i.getAttribute("src"); }});
  var out = document.createElement("pre");
  out.id = "{PROBE_ID}";
  out.textContent = JSON.stringify({{images: images.length, broken: broken, errors: window.__artdupErrors}});
  document.body.appendChild(out);
}});
</script>"""


def require_chromium() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"headless Chromium is needed for the report's browser test and {CHROMIUM} is missing: "
                    "install it with 'apt-get install -y chromium' (.ci/run does), or set ARTDUP_CHROMIUM")
    return CHROMIUM


def chromium(*arguments: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Runs headless Chromium with a fresh profile."""
    binary = require_chromium()
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *arguments], capture_output=True,
                              text=True, timeout=timeout)


def check_page(index: Path) -> dict:
    """``{"images": n, "broken": [src, ...], "errors": [message, ...]}`` for the page at ``index``."""
    index = Path(index).absolute()
    page = index.read_text(encoding="utf-8")
    head = re.search(r"<head[^>]*>", page, flags=re.IGNORECASE)
    assert head, f"{index} has no <head>"
    probed = index.with_name(".browser-check.html")  # next to the page, so relative paths resolve the same
    probed.write_text(page[: head.end()] + PROBE + page[head.end():], encoding="utf-8")
    try:
        result = chromium("--dump-dom", probed.as_uri())
    finally:
        probed.unlink()
    found = re.search(rf'<pre id="{PROBE_ID}">(.*?)</pre>', result.stdout, flags=re.DOTALL)
    assert found, f"the page never finished loading in Chromium (exit {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def external_references(page: str) -> list[str]:
    """src / href / CSS url() values that would reach the network (a scheme other than data:, or //host)."""
    values = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.IGNORECASE)
    values += re.findall(r"""url\(\s*["']?([^"')]+)""", page, flags=re.IGNORECASE)
    return [v for v in values if re.match(r"^([a-z][a-z0-9+.-]*:|//)", v, flags=re.IGNORECASE)
            and not v.lower().startswith("data:")]


def assert_loads_cleanly(index: Path) -> dict:
    """The page shows every image, raises no script error and references nothing on the network."""
    outcome = check_page(index)
    assert outcome["images"] > 0, outcome
    assert outcome["broken"] == [], f"images that did not load: {outcome['broken']}"
    assert outcome["errors"] == [], f"errors in the browser: {outcome['errors']}"
    assert external_references(Path(index).read_text(encoding="utf-8")) == []
    return outcome
