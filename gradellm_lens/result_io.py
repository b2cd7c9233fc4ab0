"""The file format of :class:`~gradellm_lens.result.AttributionResult`: writing, checked reading, atomic writes.

Formats (written by :meth:`AttributionResult.save <gradellm_lens.result.AttributionResult.save>`, read by
:meth:`AttributionResult.load <gradellm_lens.result.AttributionResult.load>`):

``.npz`` (default)
    numpy arrays ``token_ids``, ``scores`` (``[step, pos]``, float32, NaN after each step's
    prefix), ``target_ids``, ``contrast_ids`` (-1 = none), ``target_logits``, ``step_positions``
    and, when present, ``layer_head`` (``[step, layer, head, pos]``); plus ``meta``, a UTF-8 JSON
    string with ``format_version``, ``tokens``, ``prompt_length``, ``method``, ``variant``,
    ``options``, ``model``, ``layers``, ``objective``, ``versions``, ``diagnostics``,
    ``target_tokens`` and ``contrast_tokens``. ``np.load(path)`` reads it without this package.
``.json``
    one object with the same keys (:meth:`AttributionResult.to_dict`): the meta fields and the
    arrays as (nested) lists, NaN written as ``null``.

:func:`atomic_write` (a temporary file renamed into place) writes every file, so a failed or
interrupted write never leaves a truncated file; reports use it too.

Loading trusts nothing in the file: array headers (dtype, number of dimensions, shape) are read
and checked against each other, against ``meta`` and against the archive's declared sizes
**before** any array is allocated, and the total is capped (``max_bytes``); every meta field is
type-checked and every score, per-head contribution and explained value inside a step's prefix
must be finite. Any violation is an :class:`~gradellm_lens.errors.InvalidInputError` naming the
file and the field.
"""

from __future__ import annotations

import glob
import json
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar
from uuid import uuid4

import numpy as np
import torch

from .encoding import decode_json
from .errors import InvalidInputError, NumericalError

if TYPE_CHECKING:
    from .result import AttributionResult

R = TypeVar("R")

FORMAT_VERSION = 1

MAX_LOAD_BYTES = 2**31
"""Default cap on the array data :meth:`AttributionResult.load` allocates (2 GiB)."""

_ARRAYS: dict[str, tuple[str, int]] = {
    # name: (numpy dtype kinds accepted, number of dimensions)
    "token_ids": ("iu", 1),
    "scores": ("f", 2),
    "step_positions": ("iu", 1),
    "target_ids": ("iu", 1),
    "contrast_ids": ("iu", 1),
    "target_logits": ("f", 1),
    "layer_head": ("f", 4),
}
_OPTIONAL_ARRAYS = frozenset({"layer_head"})


def result_meta(result: AttributionResult) -> dict[str, Any]:
    """The ``meta`` fields of ``result`` (everything but the arrays), JSON-ready."""
    return {
        "format_version": FORMAT_VERSION,
        "tokens": list(result.tokens),
        "prompt_length": result.prompt_length,
        "method": result.method,
        "variant": result.variant,
        "options": result.options,
        "model": result.model,
        "layers": list(result.layers),
        "objective": result.objective,
        "versions": result.versions,
        "diagnostics": result.diagnostics,
        "target_tokens": list(result.target_tokens),
        "contrast_tokens": list(result.contrast_tokens),
        "user_span": None if result.user_span is None else list(result.user_span),
    }


def result_arrays(result: AttributionResult) -> dict[str, np.ndarray]:
    """The arrays of ``result`` in their file dtypes (``contrast_ids`` -1 for none)."""
    arrays = {
        "token_ids": result.token_ids.cpu().numpy().astype(np.int64),
        "scores": result.scores.cpu().numpy().astype(np.float32),
        "step_positions": np.asarray(result.step_positions, dtype=np.int64),
        "target_ids": np.asarray(result.target_ids, dtype=np.int64),
        "contrast_ids": np.asarray([-1 if c is None else c for c in result.contrast_ids], dtype=np.int64),
        "target_logits": np.asarray(result.target_logits, dtype=np.float64),
    }
    if result.layer_head is not None:
        arrays["layer_head"] = result.layer_head.cpu().numpy().astype(np.float32)
    return arrays


def save_result(result: AttributionResult, path: str | Path) -> Path:
    """Write ``result`` to ``path``, ``.npz`` or ``.json`` by the suffix (see
    :meth:`AttributionResult.save <gradellm_lens.result.AttributionResult.save>`); returns the path."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; save takes a file name (.npz or .json).")
    if path.suffix not in (".npz", ".json"):
        path = path.with_suffix(path.suffix + ".npz")
    if path.suffix == ".json":
        text = result.to_json().encode("utf-8")
        atomic_write(path, lambda fh: fh.write(text))
    else:
        arrays = {**result_arrays(result), "meta": np.asarray(json.dumps(result_meta(result), default=str))}
        atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
    return path


def load_result(cls: type[R], path: str | Path, *, max_bytes: int = MAX_LOAD_BYTES) -> R:
    """Read and check the file at ``path``, then build ``cls`` from it (:meth:`AttributionResult.load
    <gradellm_lens.result.AttributionResult.load>`); any problem is an :class:`InvalidInputError`
    naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"No attribution file at {path}.")
    reader = _read_json if path.suffix == ".json" else _read_npz
    try:
        meta, arrays = reader(path, max_bytes)
        return cls(**_fields(meta, arrays))
    except (_FileProblem, NumericalError, InvalidInputError) as exc:
        raise InvalidInputError(f"{path} is not a valid gradellm-lens attribution file: {exc}") from None


# ---- writing ---------------------------------------------------------------------------------------
def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid4().hex[:12]}.tmp")


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files of earlier saves to ``path`` whose process no longer runs."""
    if os.name != "posix":  # os.kill(pid, 0) probes a process only on POSIX
        return
    for tmp in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*.tmp"):
        pid = Path(tmp).name[len(path.name) + 2 :].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            Path(tmp).unlink(missing_ok=True)
        except OSError:  # alive, owned by another user
            pass


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file through ``write(handle)`` under a temporary name, then rename it into place.

    An interrupted or failed write (e.g. text that cannot be encoded) never leaves a truncated
    file at ``path``: an existing file stays as it was.

    Raises:
        InvalidInputError: ``path`` is a folder.
    """
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give a file name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---- reading: every check before allocating ---------------------------------------------------------
class _FileProblem(Exception):
    """A reason the file is not a valid attribution file (becomes InvalidInputError in ``load``)."""


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data_offset)`` of one ``.npy`` member, reading only its header."""
    name = info.filename[:-4]
    readers = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
    try:
        with zf.open(info) as fh:
            major, _ = np.lib.format.read_magic(fh)
            if major not in readers:
                raise _FileProblem(f"{name}: unsupported .npy version {major}")
            shape, fortran, dtype = readers[major](fh)
            offset = fh.tell()
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _FileProblem(f"{name}: unreadable array header ({exc})") from None
    if dtype.hasobject:
        raise _FileProblem(f"{name}: object arrays are not allowed")
    size = math.prod(shape) * dtype.itemsize
    if offset + size != info.file_size:
        raise _FileProblem(
            f"{name}: the header claims shape {shape} ({size} bytes) but the archive holds "
            f"{info.file_size - offset} bytes"
        )
    return shape, dtype, fortran, offset


def _npy_data(zf: zipfile.ZipFile, info: zipfile.ZipInfo, header: tuple) -> np.ndarray:
    shape, dtype, fortran, offset = header
    with zf.open(info) as fh:
        fh.read(offset)
        data = bytearray(fh.read(math.prod(shape) * dtype.itemsize))
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read_npz(path: Path, max_bytes: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not zipfile.is_zipfile(path):
        raise _FileProblem("not an .npz archive")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
            if "meta" not in members:
                raise _FileProblem("meta is not a file in the archive")
            headers = {k: _npy_header(zf, members[k]) for k in ("meta", *_ARRAYS) if k in members}
            meta_shape, meta_dtype = headers["meta"][:2]
            if meta_shape != () or meta_dtype.kind != "U":
                raise _FileProblem("meta: expected a JSON string")
            total = sum(math.prod(h[0]) * h[1].itemsize for h in headers.values())
            if total > max_bytes:
                raise _FileProblem(f"its arrays need {total} bytes, more than max_bytes={max_bytes}")
            meta = _parse_meta(str(_npy_data(zf, members["meta"], headers["meta"])[()]))
            _check_headers(meta, {k: h[:2] for k, h in headers.items() if k != "meta"})
            arrays = {k: _npy_data(zf, members[k], h) for k, h in headers.items() if k != "meta"}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _FileProblem(f"damaged archive ({exc})") from None
    return meta, arrays


def _read_json(path: Path, max_bytes: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if path.stat().st_size > max_bytes:
        raise _FileProblem(f"it is larger than max_bytes={max_bytes}")
    try:
        data = decode_json(path.read_text(encoding="utf-8"), str(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _FileProblem(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _FileProblem("not a JSON object")
    arrays = {}
    for name, (kinds, _) in _ARRAYS.items():
        if name in data:
            if (bad := _first_non_number(data[name])) is not None:  # np.array would turn "0.5" and true into floats
                raise _FileProblem(f"{name}: {json.dumps(bad)[:40]} is not a number")
            try:
                arrays[name] = np.array(data.pop(name), dtype=np.float64 if kinds == "f" else None)
            except (TypeError, ValueError, OverflowError) as exc:
                raise _FileProblem(f"{name}: not a rectangular list of numbers ({exc})") from None
    meta = _parse_meta(data)
    _check_headers(meta, {k: (a.shape, a.dtype) for k, a in arrays.items()})
    return meta, arrays


def _first_non_number(value: Any) -> Any:
    """The first leaf of nested lists that is neither a number nor null (JSON's NaN), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif item is not None and (isinstance(item, bool) or not isinstance(item, (int, float))):
            return item
    return None


def _parse_meta(meta: str | dict) -> dict[str, Any]:
    if isinstance(meta, str):
        try:
            meta = decode_json(meta, "meta")
        except json.JSONDecodeError as exc:
            raise _FileProblem(f"meta is not JSON ({exc})") from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        raise _FileProblem(f"format version {version}, expected {FORMAT_VERSION}")
    return meta


def _check_headers(meta: dict[str, Any], headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Dtype, number of dimensions and shape of every array, checked against ``meta`` and each other."""
    for name in _ARRAYS.keys() - _OPTIONAL_ARRAYS - headers.keys():
        raise _FileProblem(f"missing field {name!r}")
    for name, (shape, dtype) in headers.items():
        kinds, ndim = _ARRAYS[name]
        if dtype.kind not in kinds or len(shape) != ndim:
            expected = "integer" if kinds == "iu" else "float"
            raise _FileProblem(f"{name}: expected a {ndim}-D {expected} array, got {len(shape)}-D {dtype}")
    tokens = _meta_field(meta, "tokens")
    n_steps, n_pos = headers["scores"][0]
    expected = {"token_ids": (len(tokens),), "scores": (n_steps, len(tokens))}
    expected |= {k: (n_steps,) for k in ("step_positions", "target_ids", "contrast_ids", "target_logits")}
    if "layer_head" in headers:
        n_heads = headers["layer_head"][0][2]
        expected["layer_head"] = (n_steps, len(_meta_field(meta, "layers")), n_heads, len(tokens))
    for name, shape in expected.items():
        if headers[name][0] != shape:
            raise _FileProblem(f"{name}: shape {headers[name][0]}, expected {shape} (from {len(tokens)} tokens)")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_META_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "tokens": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of strings"),
    "prompt_length": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "method": (lambda v: isinstance(v, str), "a string"),
    "variant": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "options": (lambda v: isinstance(v, dict), "an object"),
    "model": (lambda v: isinstance(v, str), "a string"),
    "layers": (lambda v: isinstance(v, list) and all(_is_int(x) for x in v), "a list of integers"),
    "objective": (lambda v: v in ("logit", "log_prob", "prob"), "'logit', 'log_prob' or 'prob'"),
    "versions": (lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()), "an object of strings"),
    "diagnostics": (lambda v: isinstance(v, dict), "an object"),
    "target_tokens": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of strings"),
    "contrast_tokens": (lambda v: isinstance(v, list) and all(t is None or isinstance(t, str) for t in v),
                        "a list of strings or nulls"),  # fmt: skip
    "user_span": (lambda v: v is None or (isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v)),
                  "null or two integers [start, end]"),
}
_META_DEFAULTS: dict[str, Any] = {"diagnostics": {}, "target_tokens": [], "contrast_tokens": [], "user_span": None}


def _meta_field(meta: dict[str, Any], name: str) -> Any:
    if name not in meta:
        if name in _META_DEFAULTS:
            return _META_DEFAULTS[name]
        raise _FileProblem(f"missing field {name!r}")
    value = meta[name]
    check, expected = _META_FIELDS[name]
    if not check(value):
        raise _FileProblem(f"{name} must be {expected}, got {json.dumps(value)[:60]}")
    return value


def _fields(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Constructor arguments from checked meta fields and arrays."""
    values = {name: _meta_field(meta, name) for name in _META_FIELDS}
    for name in ("tokens", "layers", "target_tokens", "contrast_tokens"):
        values[name] = tuple(values[name])
    if values["user_span"] is not None:
        values["user_span"] = tuple(int(x) for x in values["user_span"])
    ints = {k: [int(x) for x in arrays[k]] for k in ("step_positions", "target_ids", "contrast_ids")}
    if any(c < -1 for c in ints["contrast_ids"]):
        raise _FileProblem("contrast_ids must be -1 (none) or a token id")
    layer_head = arrays.get("layer_head")
    return {
        **values,
        "token_ids": torch.from_numpy(arrays["token_ids"].astype(np.int64)),
        "scores": torch.from_numpy(arrays["scores"].astype(np.float32)),
        "step_positions": tuple(ints["step_positions"]),
        "target_ids": tuple(ints["target_ids"]),
        "contrast_ids": tuple(None if c < 0 else c for c in ints["contrast_ids"]),
        "target_logits": tuple(float(x) for x in arrays["target_logits"]),
        "layer_head": None if layer_head is None else torch.from_numpy(layer_head.astype(np.float32)),
    }
