"""Where task data comes from: the shared JSONL files (default), a user folder, or the Hugging Face hub.

Local files are looked up in the first of these that is given:

1. the ``data_dir`` argument (``--data-dir``);
2. the environment variable ``GRADELLM_LENS_DATA``;
3. ``<repository>/../shared/data`` (the layout of this project's checkout).

Every record is read with its 1-based line number, so a malformed line is reported as
``file:line``; so is a string that is not valid Unicode (a lone surrogate such as JSON's
``"\\ud800"``), at load time, before anything is evaluated. Sampling is deterministic and independent of the file order: examples are sorted by
``sha256(id)`` (the order ``shared/data/README.md`` uses; ``seed=0``) or by
``sha256(f"{seed}:{id}")`` for any other seed, and the first ``n`` are kept. Growing ``n`` therefore
only appends examples, which is what lets a finished run be extended without recomputing it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..encoding import check_text
from ..errors import InvalidInputError, MissingPackageError

DATA_ENV = "GRADELLM_LENS_DATA"
T = TypeVar("T")


def default_data_dir() -> Path:
    """``$GRADELLM_LENS_DATA`` when set, else the checkout's ``../shared/data``."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def resolve_data_file(filename: str, data_dir: str | Path | None = None) -> Path:
    """The path of ``filename`` in ``data_dir`` (default: :func:`default_data_dir`).

    Raises:
        InvalidInputError: the file is not there (the folder is named).
    """
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if (folder / filename).is_file():
        return folder / filename
    raise InvalidInputError(
        f"Data file {filename!r} not found in {folder}. Pass --data-dir / data_dir=, set "
        f"{DATA_ENV}, or use source='hub' to download the dataset with the `datasets` package."
    )


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for every non-blank line; a malformed line raises naming ``file:line``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"Data file {path} does not exist.") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"Data file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    records = []
    # split on "\n" only: str.splitlines() also breaks at U+2028, U+0085 ... that JSON strings may hold
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
        if not isinstance(record, dict):
            raise InvalidInputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}.")
        check_strings(record, f"{path}:{lineno}")
        records.append((lineno, record))
    if not records:
        raise InvalidInputError(f"Data file {path} has no records.")
    return records


def check_strings(record: dict[str, Any], where: str) -> None:
    """Refuse a record holding text that is not valid Unicode, naming ``where`` and the field.

    JSON escapes can spell lone surrogates (``"\\ud800"``), which no tokenizer accepts; one UTF-8
    encode of the whole record finds them, :func:`~gradellm_lens.encoding.check_text` names them.
    """
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return
    stack: list[tuple[str, Any]] = [("", record)]
    while stack:
        name, value = stack.pop()
        texts: list[tuple[str, str]] = []
        if isinstance(value, str):
            texts.append((f"field {name!r}", value))
        elif isinstance(value, dict):
            texts.extend((f"a field name in {name!r}" if name else "a field name", key) for key in value)
            stack.extend((f"{name}.{key}" if name else key, item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{name}[{i}]", item) for i, item in enumerate(value))
        for what, text in texts:
            try:
                check_text(text, what)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{where}: {exc}") from None


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
