"""The docs site (``make docs``) builds offline with no warning, and every part of it is there.

The build runs in a fresh interpreter, as ``make docs`` does (``sphinx -W --keep-going -E``), into a
temporary folder, with ``socket`` connections refused: a page, extension or theme that fetches
anything while building fails the test. Skipped only when the ``docs`` extra is not installed
(``make test`` installs it, so CI never skips).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS_MODULES = ("sphinx", "myst_parser", "myst_nb", "furo")
MISSING = [name for name in DOCS_MODULES if importlib.util.find_spec(name) is None]

pytestmark = [
    pytest.mark.slow,  # one full build: about 10 s of CPU, 20-30 s on a busy machine
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"the docs extra is not installed (no {', '.join(MISSING)}): pip install -e '.[docs]' (make test does)",
    ),
]

NETWORK = "DOCS-BUILD-NETWORK-ATTEMPT"
BUILD = f"""
import socket, sys

def refuse(*args, **kwargs):
    print("{NETWORK}", args, file=sys.stderr)
    raise OSError("the docs build must not use the network")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from sphinx.cmd.build import main
sys.exit(main(sys.argv[1:]))
"""

# MathJax typesets the API reference's formulas in the browser; it is the one thing a page loads from elsewhere
# (offline, the formulas show as TeX). Nothing else may point outside the site.
ALLOWED_REMOTE = ("https://cdn.jsdelivr.net/npm/mathjax@",)
REMOTE = re.compile(r"""<(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)=["']((?:https?:)?//[^"']+)""")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    html = out / "html"
    args = ["-W", "--keep-going", "-E", "-q", "-b", "html", "-d", str(out / "doctrees"), str(ROOT / "docs"), str(html)]
    done = subprocess.run([sys.executable, "-c", BUILD, *args], capture_output=True, text=True, cwd=ROOT, check=False)
    assert NETWORK not in done.stderr, done.stderr
    assert done.returncode == 0, f"docs build failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    assert "WARNING" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    return html


def test_every_page_is_built(site):
    pages = [
        "index.html",
        "install.html",
        "performance.html",
        *(f"guide/{name}.html" for name in ("explain", "methods", "heads", "evaluation", "own-data")),
        *(f"guide/{name}.html" for name in ("transformerlens", "scaling", "reliability")),
        *(f"results/{name}.html" for name in ("index", "qwen-classification", "smollm2-sst2", "qwen-generation")),
        *(f"results/{name}.html" for name in ("heads", "runs-classification", "runs-generation", "gpu-dry-run")),
        "results/earlier.html",
        *(f"notebooks/{name}.html" for name in ("01_quickstart", "02_faithfulness", "03_head_analysis")),
        "api/index.html",
        *(f"api/{name}.html" for name in ("gradellm_lens", "result", "methods", "models", "aggregate", "metrics")),
        *(f"api/{name}.html" for name in ("evaluation", "tasks", "analysis", "viz")),
    ]
    missing = [page for page in pages if not (site / page).is_file()]
    assert not missing, missing


def test_api_reference_documents_the_public_names(site):
    top = (site / "api" / "gradellm_lens.html").read_text(encoding="utf-8")
    assert 'id="gradellm_lens.explain"' in top
    metrics = (site / "api" / "metrics.html").read_text(encoding="utf-8")
    assert 'id="gradellm_lens.metrics.evaluate_step"' in metrics
    assert re.search(r'id="module-gradellm_lens\.metrics\.\w+"', metrics)  # the submodules' docstrings (the maths)


def test_results_pages_read_the_committed_tables(site):
    for page in ("qwen-classification", "smollm2-sst2", "qwen-generation"):
        text = (site / "results" / f"{page}.html").read_text(encoding="utf-8")
        assert "<table" in text and "grad_ellm" in text, page
    runs = (site / "results" / "runs-classification.html").read_text(encoding="utf-8")
    assert 'href="runs-generation.html"' in runs  # a README's link to a sibling results folder -> its page


def test_notebooks_are_rendered_with_their_outputs(site):
    text = (site / "notebooks" / "01_quickstart.html").read_text(encoding="utf-8")
    assert "CircuitsVis.render(" in text


def test_no_page_loads_anything_from_elsewhere(site):
    remote = {
        (str(page.relative_to(site)), url)
        for page in site.rglob("*.html")
        for url in REMOTE.findall(page.read_text(encoding="utf-8"))
        if not url.startswith(ALLOWED_REMOTE)
    }
    assert not remote, sorted(remote)
