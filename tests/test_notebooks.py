"""The example notebooks: committed executed, with readable outputs, matching their build script; and
they run top to bottom on the real SmolLM2 (slow).

Each notebook is executed with nbclient on a kernel that runs this interpreter (a kernelspec written
to a temporary JUPYTER_PATH), from the notebooks/ directory; a failing cell fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "gradellm-lens-test"


def test_notebooks_match_build_script():
    script = NOTEBOOKS / "build_notebooks.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _outputs(nb) -> list[list[dict]]:
    return [cell.outputs for cell in nb.cells if cell.cell_type == "code"]


def check_readable(name: str, cells: list[list[dict]]) -> None:
    """Outputs a reader can use: the CircuitsVis bundle once (when there are views), no tqdm widget warning."""
    text = json.dumps(cells)
    assert text.count("var CircuitsVis=") == (1 if "CircuitsVis.render(" in text else 0), name
    assert "IProgress" not in text and "TqdmWarning" not in text, name


@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "02_faithfulness.ipynb", "03_head_analysis.ipynb"])
def test_committed_notebooks_carry_their_outputs(name):
    import nbformat

    path = NOTEBOOKS / name
    assert path.stat().st_size < 2.5e6  # one CircuitsVis bundle (1.3 MB) at most
    cells = _outputs(nbformat.read(path, as_version=4))
    check_readable(name, cells)
    assert any(_has(c, "image/png") or _has(c, "text/html", "CircuitsVis.render(") for c in cells)


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory) -> str:
    """A JUPYTER_PATH whose only kernel runs ``sys.executable`` (the venv with gradellm-lens)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    return str(root)


def execute(name: str, kernel_path: str, monkeypatch) -> list[dict]:
    """Run ``notebooks/name`` and return its code cells' outputs."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", kernel_path)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    cells = _outputs(nb)
    check_readable(name, [[o for o in c if o.get("name") != "stderr"] for c in cells])  # loading bars aside
    assert "IProgress" not in json.dumps(cells)
    return cells


def _has(outputs: list[dict], mime: str, text: str = "") -> bool:
    return any(mime in o.get("data", {}) and text in o["data"][mime] for o in outputs)


@pytest.mark.slow
def test_quickstart(kernel_path, monkeypatch):
    cells = execute("01_quickstart.ipynb", kernel_path, monkeypatch)
    views = [c for c in cells if _has(c, "text/html", "CircuitsVis.render(")]
    assert len(views) == 5  # colored_tokens, _multi, layer_head_tokens, layer_tokens, compare_methods
    assert _has(cells[1], "text/html", "gradellm-lens-result")  # the result's own heatmap
    assert _has(cells[2], "text/html", "score")  # to_dataframe()
    assert all("unpkg.com" not in o["data"]["text/html"] for c in views for o in c if "data" in o)
    assert any(_has(c, "image/png") for c in cells)  # head importance figure
    assert "quickstart.html" in "".join(o.get("text", "") for o in cells[-1])


@pytest.mark.slow
def test_faithfulness(kernel_path, monkeypatch):
    cells = execute("02_faithfulness.ipynb", kernel_path, monkeypatch)
    assert any(_has(c, "text/html", "AUC π-Soft-NS") for c in cells)  # the table
    assert _has(cells[-1], "image/png")  # the π curves


@pytest.mark.slow
def test_head_analysis(kernel_path, monkeypatch):
    cells = execute("03_head_analysis.ipynb", kernel_path, monkeypatch)
    printed = "".join(o.get("text", "") for c in cells for o in c)
    assert "Grad-ELLM vs ablation" in printed and "ablated:" in printed
    assert sum(_has(c, "image/png") for c in cells) >= 3
