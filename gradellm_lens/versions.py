"""The package version, and the versions of the libraries a result depends on.

``__version__`` here is the one source of the version: ``pyproject.toml`` reads it
(``[tool.setuptools.dynamic]``), ``gradellm_lens.__version__`` re-exports it, and results and
evaluation runs record it (:func:`library_versions`). The module imports nothing heavy, so
``gradellm-lens --version`` answers without loading torch.
"""

from __future__ import annotations

__version__ = "0.3.0"


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour a result depends on: ``"gradellm-lens"`` (this
    package, from :data:`__version__`, read at call time), ``torch``, ``transformer-lens`` and
    ``transformers`` (``"unknown"`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"gradellm-lens": __version__}
    for pkg in ("torch", "transformer-lens", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "unknown"
    return out
