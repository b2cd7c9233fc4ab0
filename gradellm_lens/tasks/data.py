"""Where task data comes from: the shared JSONL files (default), a user folder, or the Hugging Face hub.

Local files are looked up in the first of these that is given:

1. the ``data_dir`` argument (``--data-dir``);
2. the environment variable ``GRADELLM_LENS_DATA``;
3. ``./data`` or, failing that, ``../shared/data``, both relative to the current directory (the second
   is the layout of this project's checkout, whose commands run from the repository root); nothing
   is read from inside the installed package.

Every record is read with its 1-based line number, so a malformed line is reported as
``file:line``; so is a byte that is not UTF-8, a string that is not valid Unicode (a lone surrogate
such as JSON's ``"\\ud800"``) and JSON nested too deeply, at load time, before anything is
evaluated. A leading byte-order mark is ignored, and lines end at ``"\\n"`` only, so a string may
hold U+2028 or U+0085 (:func:`read_lines`; prompts files are read by the same functions).

Sampling is deterministic and independent of the file order: examples are sorted by
``sha256(id)`` (the order ``shared/data/README.md`` uses; ``seed=0``) or by
``sha256(f"{seed}:{id}")`` for any other seed, and the first ``n`` are kept. Growing ``n`` therefore
only appends examples, which is what lets a finished run be extended without recomputing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..encoding import check_text, decode_json
from ..errors import InvalidInputError, MissingPackageError

DATA_ENV = "GRADELLM_LENS_DATA"
T = TypeVar("T")


DEFAULT_DATA_DIRS = (Path("data"), Path("..") / "shared" / "data")
"""The folders searched, relative to the working directory, when neither ``data_dir`` nor the environment names one."""


def default_data_dir() -> Path:
    """``$GRADELLM_LENS_DATA`` when set, else the first folder of :data:`DEFAULT_DATA_DIRS` that exists
    (``./data`` when none does, so that an error names where the files were expected)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    for folder in DEFAULT_DATA_DIRS:
        if folder.is_dir():
            return folder.resolve()
    return DEFAULT_DATA_DIRS[0]


def resolve_data_file(filename: str, data_dir: str | Path | None = None) -> Path:
    """The path of ``filename`` in ``data_dir``; by default in ``$GRADELLM_LENS_DATA``, else in the first
    folder of :data:`DEFAULT_DATA_DIRS` that holds it.

    Raises:
        InvalidInputError: the file is not there (the folders are named).
    """
    if data_dir is not None or os.environ.get(DATA_ENV):
        folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        if (folder / filename).is_file():
            return folder / filename
        where = str(folder)
    else:
        for folder in DEFAULT_DATA_DIRS:
            if (folder / filename).is_file():
                return (folder / filename).resolve()
        where = f"{' or '.join(map(str, DEFAULT_DATA_DIRS))} (relative to the working directory)"
    raise InvalidInputError(
        f"Data file {filename!r} not found in {where}. Pass --data-dir / data_dir=, set "
        f"{DATA_ENV}, or use source='hub' to download the dataset with the `datasets` package."
    )


def check_readable_file(path: Path, what: str = "Data file") -> None:
    """Refuse a path that is missing, a folder, or not a regular file (a FIFO would block a reader, a
    device such as ``/dev/null`` is no data), naming it; ``what`` starts the message."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InvalidInputError(f"{what} {path} does not exist.") from None
    except OSError as exc:
        raise InvalidInputError(f"{what} {path} cannot be read ({exc.strerror}).") from None
    if stat.S_ISDIR(mode):
        raise InvalidInputError(f"{what} {path} is a folder; give a file.")
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"{what} {path} is not a regular file (a FIFO, socket or device); give a file.")


def read_lines(source: str | Path, what: str = "Data file") -> tuple[str, list[tuple[int, str]]]:
    """The name of ``source`` and its non-blank lines as ``(line number, text)``; ``"-"`` reads stdin.

    UTF-8 text; a leading byte-order mark is dropped, lines end at ``"\\n"`` only (``"\\r\\n"`` too):
    ``str.splitlines()`` would also break at U+2028, U+0085, form feeds ... that a line may hold.

    Raises:
        InvalidInputError: not a readable regular file (:func:`check_readable_file`), or a byte
            that is not UTF-8 (``file:line`` and the character).
    """
    if str(source) == "-":
        name, raw = "<stdin>", sys.stdin.buffer.read()
    else:
        path = Path(source).expanduser()
        check_readable_file(path, what)
        name, raw = str(path), path.read_bytes()
    text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    lines = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            try:
                check_text(line, "the line")
            except InvalidInputError as exc:
                raise InvalidInputError(f"{name}:{lineno}: {exc}") from None
            lines.append((lineno, line))
    return name, lines


def parse_jsonl(name: str, lines: Sequence[tuple[int, str]]) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for each of :func:`read_lines`' lines: one JSON object per line.

    Raises:
        InvalidInputError: a line that is not a JSON object, nests too deeply or holds text that is
            not valid Unicode (:func:`~gradellm_lens.encoding.decode_json`), naming ``file:line``.
    """
    records = []
    for lineno, line in lines:
        try:
            record = decode_json(line, name, line=lineno)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{name}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
        if not isinstance(record, dict):
            raise InvalidInputError(f"{name}:{lineno}: expected a JSON object, got {type(record).__name__}.")
        records.append((lineno, record))
    return records


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for every non-blank line (:func:`read_lines`, :func:`parse_jsonl`).

    The one JSONL reader: task data (``--data``, the built-in tasks' files) and prompts files.
    """
    name, lines = read_lines(path)
    if not lines:
        raise InvalidInputError(f"Data file {name} has no records.")
    return parse_jsonl(name, lines)


def field(record: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``record[name]``, checked to be of ``kind``; otherwise an error naming ``where`` (``file:line``)."""
    if name not in record:
        raise InvalidInputError(f"{where}: missing field {name!r} (fields present: {', '.join(sorted(record))}).")
    value = record[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        wanted = " or ".join(k.__name__ for k in kinds)
        raise InvalidInputError(f"{where}: field {name!r} must be {wanted}, got {type(value).__name__} {value!r:.60}.")
    return value


def order_key(example_id: str, seed: int = 0) -> str:
    """Sort key of an example: ``sha256(id)`` for ``seed=0``, else ``sha256(f"{seed}:{id}")``."""
    text = example_id if seed == 0 else f"{seed}:{example_id}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def select(items: Sequence[T], n: int | None, seed: int, key: Callable[[T], str]) -> list[T]:
    """The first ``n`` items (all when None) in :func:`order_key` order of ``key(item)``."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise InvalidInputError(f"n must be a positive number of examples, got {n!r}.")
    ordered = sorted(items, key=lambda item: order_key(key(item), seed))
    return ordered if n is None else ordered[:n]


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (recorded with results, so that changed data is detected)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_hub_rows(dataset: str, split: str, config: str | None = None) -> list[dict[str, Any]]:
    """Rows of a hub dataset split through ``datasets.load_dataset`` (network or local HF cache).

    Raises:
        MissingPackageError: ``datasets`` is not installed.
        InvalidInputError: the dataset or split cannot be loaded (the cause is quoted).
    """
    try:
        import datasets
    except ImportError:
        raise MissingPackageError(
            "source='hub' needs the `datasets` package: pip install datasets (or use the local files)."
        ) from None
    try:
        loaded = datasets.load_dataset(dataset, config, split=split)
    except Exception as exc:  # network, auth, unknown split: all surface as one actionable line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(
            f"Could not load {dataset!r} split {split!r} from the hub ({type(exc).__name__}: {first}); "
            f"use the local files (source='local') instead."
        ) from None
    return [dict(row) for row in loaded]
