"""Sphinx configuration of the gradellm-lens documentation (``make docs``; built offline, warnings are errors).

Pages are MyST Markdown; the API reference is autodoc over the docstrings (Google sections through
napoleon); the notebooks are rendered from their committed outputs by myst-nb and never executed here.
Nothing is fetched while building: no intersphinx, and the furo theme ships its own assets and uses the
system fonts.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document this checkout, not an installed copy

import gradellm_lens

project = "gradellm-lens"
author = "the gradellm-lens authors"
copyright = "the gradellm-lens authors, Apache-2.0"
release = gradellm_lens.__version__
version = release

extensions = [
    "myst_nb",  # Markdown pages (it brings myst-parser) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# API reference
autodoc_default_options = {"member-order": "bysource", "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields, not a second description of each dataclass field

# Markdown and notebooks
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # rendered from the committed outputs (notebooks/build_notebooks.py runs them)

html_theme = "furo"
html_title = f"gradellm-lens {release}"
html_static_path: list[str] = []


# The results pages include the READMEs under analyses/results/, whose links point at each other's folders
# (right on a repository browser); in the docs each of those READMEs is a page of its own.
RESULTS = ROOT / "analyses" / "results"
RESULTS_PAGES = {
    "faithfulness": "/results/runs-classification.md",
    "faithfulness-generation": "/results/runs-generation.md",
    "faithfulness-gpu-dry-run": "/results/gpu-dry-run.md",
    "faithfulness-earlier": "/results/earlier.md",
    "heads": "/results/heads.md",
}
_README_LINK = re.compile(r"\]\(\.\./([\w.-]+)/(?:README\.md)?\)")
_DOCS_LINK = re.compile(r"\]\(\.\./\.\./\.\./docs/([^)]+)\)")


def _link_results_readmes(app, relative_path, parent_docname, content) -> None:
    """Point a results README's links to a sibling results folder at that folder's page, and to docs/ pages."""
    if (Path(app.srcdir) / relative_path).resolve().parent.parent != RESULTS:
        return

    def page(match: re.Match) -> str:
        folder = match.group(1)
        if folder not in RESULTS_PAGES:
            raise ValueError(f"{relative_path} links to analyses/results/{folder}/, which has no docs page")
        return f"]({RESULTS_PAGES[folder]})"

    content[0] = _DOCS_LINK.sub(r"](/\1)", _README_LINK.sub(page, content[0]))


class ModuleDocstrings(SphinxDirective):
    """``.. module-docstrings:: PACKAGE``: one section per public submodule, with its docstring.

    The package's page documents its public names; the maths and behaviour are stated in the
    submodules' docstrings, found here by walking the package, so a renamed module needs no edit.
    """

    required_arguments = 1

    def run(self):
        package = importlib.import_module(self.arguments[0])
        lines = []
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            name = f"{package.__name__}.{info.name}"
            title = f"``{name}``"
            lines += [title, "~" * len(title), "", f".. automodule:: {name}", ""]
        node = nodes.Element()
        nested_parse_with_titles(self.state, StringList(lines, source=f"<module-docstrings {package.__name__}>"), node)
        return node.children


def setup(app) -> None:
    app.connect("include-read", _link_results_readmes)
    app.add_directive("module-docstrings", ModuleDocstrings)
