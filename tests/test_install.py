"""The attribution core needs no extra: ``pip install gradellm-lens`` explains, shows and reports.

The core's dependencies are transformer-lens, torch, circuitsvis, jaxtyping and numpy; gguf,
safetensors and accelerate (the ``models`` extra), pandas and matplotlib (``evaluation``) are
imported only where a feature needs them, through :func:`gradellm_lens.optional.require`.

- The fast test runs the core in a subprocess where gradellm_lens cannot import any of those
  packages (transformer-lens itself still may: it depends on some of them).
- The slow test builds the wheel, installs it with ``torch==2.13.0`` alone into a fresh virtualenv
  and explains a prompt with the built-in ``tiny-llama`` model (no download).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradellm_lens.errors import MissingPackageError
from gradellm_lens.optional import EXTRAS, require

ROOT = Path(__file__).resolve().parents[1]
CORE = {"torch", "transformer-lens", "circuitsvis", "jaxtyping", "numpy"}
OPTIONAL = sorted({module for modules in EXTRAS.values() for module in modules} | {"matplotlib", "pandas"})


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]


def _project() -> dict:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_core_has_the_five_dependencies_and_each_extra_installs_what_the_code_names():
    project = _project()
    assert {_name(d) for d in project["dependencies"]} == CORE
    extras = project["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        assert set(modules) <= {_name(d) for d in extras[extra]}, extra
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    test_extras = re.search(r"^setup-test:\n\t@EXTRAS=(\S+) bash scripts/setup.sh$", make, flags=re.MULTILINE)
    assert test_extras and {"models", "evaluation", "distributed", "test", "docs"} <= set(test_extras[1].split(","))
    setup = (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    demo_extras = re.search(r"^EXTRAS=\$\{EXTRAS:-(\S+)\}$", setup, flags=re.MULTILINE)
    assert demo_extras and "models" in demo_extras[1].split(",")  # the demo's default model is a GGUF file
    assert "models" in (ROOT / "scripts" / "setup-tl3.sh").read_text(encoding="utf-8")


def test_require_names_the_extra():
    assert require("json", "models", "x").dumps([]) == "[]"
    expected = r"Figures needs no_such_module_xyz.*pip install 'gradellm-lens\[evaluation\]'"
    with pytest.raises(MissingPackageError, match=expected):
        require("no_such_module_xyz", "evaluation", "Figures")


BLOCKED_RUN = """
import builtins, importlib, sys

BLOCKED = set(sys.argv[1].split(","))
HARD = {"gguf", "matplotlib"}  # no dependency of the core imports these: gone for everyone


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HARD:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, Blocker())


def from_gradellm(globals_):
    return (globals_ or {}).get("__name__", "").startswith("gradellm_lens")


def refuse(name):
    raise ModuleNotFoundError(f"gradellm_lens imported {name!r} on the core path (blocked)", name=name)


real_import, real_import_module = builtins.__import__, importlib.import_module


def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] in BLOCKED and from_gradellm(globals):
        refuse(name)
    return real_import(name, globals, locals, fromlist, level)


def guarded_import_module(name, package=None):
    if not name.startswith(".") and name.split(".")[0] in BLOCKED and from_gradellm(sys._getframe(1).f_globals):
        refuse(name)
    return real_import_module(name, package)


builtins.__import__, importlib.import_module = guarded_import, guarded_import_module

import torch

torch.set_num_threads(1)
import gradellm_lens as gl
from gradellm_lens.analysis import head_importance
from gradellm_lens.cli.main import main
from gradellm_lens.errors import MissingPackageError
from gradellm_lens.metrics import FaithfulnessConfig, evaluate_step

model = gl.load_model("tiny-llama")
result = gl.explain(model, "the cat sat on the mat", max_new_tokens=2, layers="all")
assert result.scores.shape[0] == 2
print(gl.viz.render(result, color=False))
gl.viz.colored_tokens(result, 0)
head_importance(result, "positive")
prefix = torch.tensor([1, 4, 32, 34, 14, 4, 35, 41, 23, 7])
evaluate_step(model, prefix, 5, torch.rand(10, dtype=torch.float64), config=FaithfulnessConfig(pis=(0.5,), n_draws=2))
page = gl.viz.write_report([result], sys.argv[2] + "/report.html").read_text(encoding="utf-8")
assert "No head importance figure" in page and "gradellm-lens[evaluation]" in page, "the report says what is missing"
try:
    gl.viz.plot_head_importance(result)
except MissingPackageError as exc:
    assert "gradellm-lens[evaluation]" in str(exc), exc
else:
    raise AssertionError("plot_head_importance ran without matplotlib")
assert main(["explain", "--model", "tiny-llama", "the cat sat", "--max-new-tokens", "1", "--no-progress",
             "--out", sys.argv[2] + "/cli.html"]) == 0
leaked = sorted(m for m in ("gguf", "matplotlib") if m in sys.modules)
assert not leaked, leaked
print("CORE-OK")
"""


def test_the_core_runs_without_the_optional_packages(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "GRADELLM_LENS_CACHE": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, ",".join(OPTIONAL), str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and "CORE-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


WHEEL_RUN = """
import importlib.util, sys
import torch
torch.set_num_threads(1)
import gradellm_lens as gl

missing = [m for m in ("gguf", "matplotlib") if importlib.util.find_spec(m) is not None]
model = gl.load_model("tiny-llama")
result = gl.explain(model, "the cat sat on the mat", max_new_tokens=2)
assert result.scores.shape[0] == 2
gl.viz.write_report([result], sys.argv[1])
print("WHEEL-OK", "installed:", missing)
"""


@pytest.mark.slow
def test_the_wheel_alone_explains_in_a_fresh_virtualenv(tmp_path):
    """``pip install gradellm-lens`` (with torch pinned, as the setup scripts do) is enough for ``explain``."""
    # a copy of what the wheel is built from: pip builds in the source tree (build/, *.egg-info), and an
    # egg-info on the path would make pip take the checkout for an installed gradellm-lens
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "gradellm_lens", source / "gradellm_lens", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", GRADELLM_LENS_CACHE=str(tmp_path / "cache"))
    pip = dict(check=True, env=env, cwd=tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source], timeout=600, **pip)
    (wheel,) = wheels.glob("gradellm_lens-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], timeout=300, **pip)
    python = venv / "bin" / "python"
    torch_pin = f"torch=={os.environ.get('TORCH_VERSION', '2.13.0')}"
    subprocess.run([python, "-m", "pip", "install", "-q", torch_pin, wheel], timeout=3000, **pip)
    proc = subprocess.run(
        [python, "-c", WHEEL_RUN, str(tmp_path / "report.html")],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and "WHEEL-OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "installed: []" in proc.stdout, f"the core install pulled an extra's package: {proc.stdout}"
    gl_file = subprocess.run(
        [python, "-c", "import gradellm_lens; print(gradellm_lens.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    assert str(venv) in gl_file, gl_file  # the wheel's copy, not the checkout's
