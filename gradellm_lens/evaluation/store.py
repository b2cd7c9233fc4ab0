"""Crash-safe JSONL results files: header lines, then one result line per (example, method).

Format (UTF-8, one JSON object per ``\\n``-terminated line, no NaN/inf anywhere):

* ``{"kind": "header", "format": "gradellm-lens-evaluation", "format_version": 1, "config": {...},
  "config_fingerprint": ..., "methods": {label: {"config": {...}, "fingerprint": ...}},
  "shard": {"index": i, "count": n}, "created": ..., "versions": {...}}``: the run's options. A
  later header is appended when a rerun adds methods (or with ``mode="allow_mixed"``);
* ``{"kind": "result", "example_id": ..., "method": label, "fingerprint": ..., "status": ...}``:
  one finished (example, method) pair (see :mod:`.runner` for the other fields).

``fingerprint`` of a method is a hash of the run's common configuration (task, model, metric and
perturbation options, and the gradellm-lens version that computed it: ``config["gradellm_lens_version"]``)
together with that method's resolved options, so a result line says exactly which configuration
and which code produced it. The sampling seed and ``n`` are not part of it: an example's result
does not depend on which other examples were drawn, so a run can be extended.

Reading validates every complete line (:func:`parse_lines`), naming ``file:line`` on the first
problem: not JSON (or nested too deeply, or holding text that is not valid Unicode:
:func:`~gradellm_lens.encoding.decode_json`), a ``NaN``/``Infinity`` literal or a number too large
for a float, a missing or wrongly typed field (a string metric or ``index``, a header without
``config.task``), a π curve (any list under a key starting with ``pi_``) without one value per π,
a metric or π-curve value outside ``[0, 1]`` (where every one of them lies), a ``status`` other
than :data:`STATUSES`. Fingerprints are recomputed, never trusted: a header whose
``config_fingerprint`` or method fingerprint is not the hash of its recorded configuration (an
edited config), and a result line whose ``fingerprint`` is not that of its ``method`` in a header
above it (a line pasted from a run with other options), are refused. Such a file is never
averaged, resumed or modified. Only regular files are read (a FIFO would block the reader).

Crash safety: every line goes out in one ``write`` of the whole line, followed by ``fsync``; a
kill can therefore leave at most one partial *last* line (no ``\\n``), which :class:`ResultsFile`
detects on the next open and cuts off (``ftruncate`` to the last newline, then ``fsync``) before
appending, once the file has been accepted: a refused open leaves the file byte for byte as it
was. A malformed line anywhere else is reported as corruption (file and line), never silently
skipped. An exclusive ``flock`` stops two processes from appending to one file. Opening with a
configuration (or a gradellm-lens version) different from the file's raises unless ``mode`` is
``"overwrite"`` (start the file over) or ``"allow_mixed"`` (append under a new header).

A run folder holds one file per shard (``results.shard-<i>-of-<n>.jsonl``; :func:`results_files`
lists them). A pair's method fingerprint does not depend on the sharding, so a pair finished in
*any* results file of the folder, under any number of shards, is the same computation:
:func:`finished_elsewhere` finds them, and a resumed run skips them instead of computing them again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ..encoding import decode_json
from ..errors import InvalidInputError, NumericalError, check_choice
from ..tasks.data import check_readable_file
from ..versions import library_versions

try:  # POSIX advisory locks; without them (Windows) the single-writer check is skipped
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

FORMAT = "gradellm-lens-evaluation"
FORMAT_VERSION = 1
OpenMode = Literal["resume", "overwrite", "allow_mixed"]
OPEN_MODES: tuple[str, ...] = ("resume", "overwrite", "allow_mixed")
VERSION_KEY = "gradellm_lens_version"
RESULTS_GLOB = "results*.jsonl"
"""The names of the results files of a run folder (one per shard)."""
METRIC_KEYS: tuple[str, ...] = ("soft_ns", "soft_nc", "auc_pi_ns", "auc_pi_nc", "mean_score")
"""The scalar metrics of a step, a pair's mean, a control and a random map: each lies in ``[0, 1]``."""
CURVE_KEYS: tuple[str, ...] = ("pi_ns", "pi_nc")
"""The π curves (one value in ``[0, 1]`` per π)."""
STATUSES: tuple[str, ...] = ("ok", "failed", "degenerate", "ill_conditioned")
"""A result line's ``status`` (see :mod:`.runner`)."""
_RANGE_SLACK = 1e-9  # rounding of a trapezoid area or a mean of values in [0, 1]
_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {  # what readers index, per line kind
    "header": {"format": str, "config": dict, "config_fingerprint": str, "methods": dict},
    "result": {"example_id": str, "method": str, "fingerprint": str, "status": str},
}
_CONFIG_FIELDS: dict[str, type] = {"task": dict, "task.task": str, "task.kind": str, "model": dict, "model.name": str}
_RESULT_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "index": int, "pis": list, "mean": (dict, type(None)), "steps": list, "output": dict, "error": (str, type(None)),
}  # fmt: skip


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def method_fingerprint(config_fingerprint: str, method_config: Any) -> str:
    """What a result line carries: ``fingerprint({"config": config_fingerprint, "method": method_config})``."""
    return fingerprint({"config": config_fingerprint, "method": method_config})


def encode_line(record: Mapping[str, Any]) -> bytes:
    """One JSONL line; NaN or infinite numbers raise :class:`NumericalError` (never written as numbers)."""
    try:
        return (json.dumps(record, allow_nan=False, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    except ValueError as exc:
        raise NumericalError(f"A result value is NaN or infinite and cannot be recorded as a number ({exc}).") from None


@dataclass(frozen=True)
class RunHeader:
    """The configuration a results file records.

    Attributes:
        config: options common to every method (task, model, metrics, perturbation).
        methods: method label -> that method's resolved options.
        shard_index: which examples this file holds (``i % num_shards == shard_index``).
        num_shards: the number of shards the examples are dealt to.
        versions: library versions (recorded, not compared).
        package_version: the gradellm-lens version computing the results (default: the running one,
            :data:`gradellm_lens.versions.__version__`); added to ``config`` as
            ``"gradellm_lens_version"``, so it is part of every fingerprint and compared on resume.
    """

    config: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    shard_index: int = 0
    num_shards: int = 1
    versions: dict[str, str] = field(default_factory=dict)
    package_version: str = field(default_factory=lambda: library_versions()["gradellm-lens"])

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", {**self.config, VERSION_KEY: self.package_version})

    @property
    def config_fingerprint(self) -> str:
        return fingerprint(self.config)

    def method_fingerprint(self, label: str) -> str:
        """Fingerprint of (common config, method options): what a result line carries."""
        return method_fingerprint(self.config_fingerprint, self.methods[label])

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": "header",
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config,
            "config_fingerprint": self.config_fingerprint,
            "methods": {k: {"config": v, "fingerprint": self.method_fingerprint(k)} for k, v in self.methods.items()},
            "shard": {"index": self.shard_index, "count": self.num_shards},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": self.versions,
        }


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def describe_difference(old: Any, new: Any, limit: int = 4) -> str:
    """``"metrics.n_draws: 5 -> 3; ..."`` for the leaves that differ between two configs."""
    a, b = _flatten(old), _flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k, "<absent>") != b.get(k, "<absent>")]
    parts = [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in keys[:limit]]
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return "; ".join(parts) + more


class _BadNumber(ValueError):
    """A JSON number that is not a finite float (``NaN``, ``Infinity``, ``1e999``)."""


def _reject_constant(name: str) -> float:
    raise _BadNumber(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(text)
    return value


def _loads(line: bytes, path: Path, lineno: int) -> Any:
    """:func:`~gradellm_lens.encoding.decode_json` of one UTF-8 line that refuses non-finite numbers
    (raises :class:`_BadNumber`), deep nesting and text that is not valid Unicode (``file:line``)."""
    text = line.decode("utf-8")
    return decode_json(text, str(path), line=lineno, parse_constant=_reject_constant, parse_float=_finite_float)


def _get(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _type_problems(
    record: Mapping[str, Any], fields: Mapping[str, type | tuple[type, ...]], required: bool
) -> list[str]:
    out = []
    for name, kind in fields.items():
        value = _get(record, name)
        if (required or value is not None) and (not isinstance(value, kind) or isinstance(value, bool)):
            out.append(name)
    return out


def _curve_problems(obj: Any, n_pis: int | None, where: str) -> list[str]:
    """Values in ``obj`` (a result's ``mean`` or ``steps``) that are not numbers or well-formed π curves."""
    out: list[str] = []
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            name = f"{where}.{key}"
            if key.startswith("pi_") and isinstance(value, list):
                if not all(_is_number(v) for v in value) or (n_pis is not None and len(value) != n_pis):
                    out.append(f"{name} (a π curve needs one number per π, {n_pis})")
            else:
                out += _curve_problems(value, n_pis, name)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _curve_problems(value, n_pis, f"{where}[{i}]")
    return out


def _range_problems(obj: Any, where: str) -> list[str]:
    """Metric values (:data:`METRIC_KEYS`, :data:`CURVE_KEYS`, at any depth of ``obj``) outside ``[0, 1]``."""

    def outside(value: Any) -> bool:
        return _is_number(value) and not -_RANGE_SLACK <= value <= 1 + _RANGE_SLACK

    out: list[str] = []
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            name = f"{where}.{key}"
            values = value if key in CURVE_KEYS and isinstance(value, list) else [value] if key in METRIC_KEYS else None
            if values is None:
                out += _range_problems(value, name)
            elif any(outside(v) for v in values):
                out.append(f"{name} (a metric value outside [0, 1])")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            out += _range_problems(value, f"{where}[{i}]")
    return out


def _mean_problems(mean: Any, where: str = "mean") -> list[str]:
    """Leaves of ``mean`` that are not numbers or None (in nested dicts and lists, e.g. per-map values)."""
    if isinstance(mean, Mapping):
        return [p for key, value in mean.items() for p in _mean_problems(value, f"{where}.{key}")]
    if isinstance(mean, list):
        return [p for i, value in enumerate(mean) for p in _mean_problems(value, f"{where}[{i}]")]
    return [] if mean is None or _is_number(mean) else [f"{where} ({type(mean).__name__}, not a number)"]


def _is_method_entry(entry: Any) -> bool:
    """A header's ``methods`` value: ``{"config": {...}, "fingerprint": "..."}``."""
    return (
        isinstance(entry, dict) and isinstance(entry.get("fingerprint"), str) and isinstance(entry.get("config"), dict)
    )


def check_record(record: dict[str, Any]) -> list[str]:
    """What is wrong with one parsed results line (empty: nothing); see the module docstring."""
    kind = record["kind"]
    bad = _type_problems(record, _FIELDS[kind], required=True)
    if bad:
        return bad
    if kind == "header":
        entries = record["methods"].items()
        bad = [f"methods.{k}" for k, v in entries if not _is_method_entry(v)]
        return bad + [f"config.{name}" for name in _type_problems(record["config"], _CONFIG_FIELDS, required=True)]
    bad = _type_problems(record, _RESULT_OPTIONAL, required=False)
    bad += [f"{k} (a count)" for k, v in record.items() if k.startswith("n_") and not _is_count(v)]
    if bad:
        return bad
    if "index" in record and not _is_count(record["index"]):
        return ["index (negative)"]
    if record["status"] not in STATUSES:
        return [f"status ({record['status']!r} is not one of {', '.join(STATUSES)})"]
    pis = record.get("pis")
    if pis is not None and not (pis and all(_is_number(p) for p in pis)):
        return ["pis (not a list of numbers)"]
    if record["status"] == "ok" and (record.get("mean") is None or pis is None):
        return ["mean and pis (a result with status 'ok' needs both)"]
    n_pis = None if pis is None else len(pis)
    return (
        _mean_problems(record.get("mean"))
        + _curve_problems(record.get("mean"), n_pis, "mean")
        + _curve_problems(record.get("steps"), n_pis, "steps")
        + [p for key in ("mean", "controls", "maps", "steps") for p in _range_problems(record.get(key), key)]
    )


def _fingerprint_problem(header: Mapping[str, Any]) -> str | None:
    """Why a (well-typed) header's fingerprints are not those of its recorded configs, or None."""
    config_fp = fingerprint(header["config"])
    if config_fp != header["config_fingerprint"]:
        return "config_fingerprint (it is not the hash of the recorded config: was the config edited?)"
    for label, entry in header["methods"].items():
        if method_fingerprint(config_fp, entry["config"]) != entry["fingerprint"]:
            return f"methods.{label}.fingerprint (it is not the hash of the recorded method config: edited?)"
    return None


def parse_lines(data: bytes, path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of the complete lines of ``data``, and the length of a trailing partial line (0: none).

    Raises:
        InvalidInputError: a complete line is not a valid header or result line (see
            :func:`check_record`), a header's fingerprints are not the hashes of its configs, or a
            result line's fingerprint is not its method's in a header above it; naming ``file:line``.
    """
    end = data.rfind(b"\n") + 1
    records = []
    owners: dict[str, str] = {}  # method fingerprint -> label, from the headers read so far
    hint = "Move the file away or rerun with --overwrite."
    for lineno, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = _loads(line, path, lineno)
        except _BadNumber as exc:
            raise InvalidInputError(
                f"{path}:{lineno}: corrupt results line: the number {exc} is not finite (results never hold "
                f"NaN or infinity). {hint}"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or record.get("kind") not in ("header", "result"):
            raise InvalidInputError(
                f"{path}:{lineno}: corrupt results line (not an interrupted write, which only affects the last "
                f"line). {hint}"
            )
        bad = check_record(record)
        if not bad and record["kind"] == "header" and (problem := _fingerprint_problem(record)) is not None:
            bad = [problem]
        if bad:
            raise InvalidInputError(
                f"{path}:{lineno}: corrupt {record['kind']} line: missing or invalid {', '.join(bad[:4])}. {hint}"
            )
        if record["kind"] == "header":
            owners.update((entry["fingerprint"], label) for label, entry in record["methods"].items())
        elif not owners:
            raise InvalidInputError(f"{path}:{lineno}: a result line without a header line above it. {hint}")
        elif owners.get(record["fingerprint"]) != record["method"]:
            raise InvalidInputError(
                f"{path}:{lineno}: the result of method {record['method']!r} has fingerprint "
                f"{record['fingerprint']!r}, which no header above it gives that method: a line of a run with other "
                f"options (or an edited one). {hint}"
            )
        records.append(record)
    return records, len(data) - end


def read_results(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """``(headers, results, partial_last_line)`` of a results file, read-only (a run may be appending)."""
    path = Path(path)
    check_readable_file(path, "Results file")
    records, partial = parse_lines(path.read_bytes(), path)
    headers = [r for r in records if r["kind"] == "header"]
    if records and (not headers or records[0]["kind"] != "header"):
        raise InvalidInputError(f"{path}: the first line is not a gradellm-lens evaluation header.")
    if headers and any(h.get("format") != FORMAT for h in headers):
        raise InvalidInputError(f"{path}: not a gradellm-lens evaluation results file.")
    return headers, [r for r in records if r["kind"] == "result"], partial > 0


def results_files(folder: str | Path) -> list[Path]:
    """The results files (:data:`RESULTS_GLOB`) of a run folder, sorted by name."""
    return sorted(Path(folder).glob(RESULTS_GLOB))


def finished_elsewhere(path: str | Path, fingerprints: Collection[str]) -> dict[Path, set[tuple[str, str]]]:
    """Pairs already finished in the other results files of ``path``'s folder.

    Returns, for each results file of the folder other than ``path`` (e.g. a shard of a run with
    another number of processes) that holds any, its ``(example_id, method fingerprint)`` pairs
    with one of ``fingerprints``. Files are only read (another process may be appending; its
    unfinished last line is ignored); a damaged line raises :class:`InvalidInputError` naming
    ``file:line``, as :func:`read_results` does.
    """
    path = Path(path)
    wanted = set(fingerprints)
    found: dict[Path, set[tuple[str, str]]] = {}
    for other in results_files(path.parent):
        if other.resolve() == path.resolve():
            continue
        _headers, results, _partial = read_results(other)
        pairs = {(r["example_id"], r["fingerprint"]) for r in results if r["fingerprint"] in wanted}
        if pairs:
            found[other] = pairs
    return found


class ResultsFile:
    """An open, locked results file for appending (see the module docstring).

    Attributes:
        path: the file.
        header: the configuration of this run.
        done: ``(example_id, method fingerprint)`` pairs already in the file.
        dropped_partial: bytes of an interrupted last line removed on open (0: none).
        resumed_results: number of result lines found on open.
    """

    def __init__(self, path: str | Path, header: RunHeader, mode: OpenMode = "resume") -> None:
        check_choice("mode", mode, OPEN_MODES)
        self.path = Path(path)
        self.header = header
        if os.path.lexists(self.path):
            check_readable_file(self.path, "Results file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._lock()
            if created:
                _fsync_dir(self.path.parent)
            if mode == "overwrite":
                os.ftruncate(self._fd, 0)
            self.done, self.dropped_partial, self.resumed_results = self._prepare(mode)
        except BaseException:
            os.close(self._fd)
            raise

    def _lock(self) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInputError(
                f"{self.path} is being written by another process; wait for it to finish or choose another --out-dir."
            ) from None

    def _prepare(self, mode: OpenMode) -> tuple[set[tuple[str, str]], int, int]:
        """Check the file's lines against this run, then cut an interrupted last line (never before)."""
        with open(self.path, "rb") as f:
            data = f.read()
        records, partial = parse_lines(data, self.path)
        headers = [r for r in records if r["kind"] == "header"]
        results = [r for r in records if r["kind"] == "result"]
        if results and not headers:
            raise InvalidInputError(f"{self.path}: results without a header line; move the file away or --overwrite.")
        if any(h.get("format") != FORMAT for h in headers):
            raise InvalidInputError(f"{self.path} is not a gradellm-lens evaluation results file.")
        if headers and mode == "resume":
            self._check_compatible(headers)
        if partial:
            os.ftruncate(self._fd, len(data) - partial)
            os.fsync(self._fd)
        if not headers:
            self._write(self.header.to_record())
            return set(), partial, 0
        known = {
            label: entry["fingerprint"]
            for h in headers
            if h["config_fingerprint"] == self.header.config_fingerprint
            for label, entry in h["methods"].items()
        }
        if any(known.get(label) != self.header.method_fingerprint(label) for label in self.header.methods):
            self._write(self.header.to_record())
        return {(r["example_id"], r["fingerprint"]) for r in results}, partial, len(results)

    def _check_compatible(self, headers: list[dict[str, Any]]) -> None:
        last = headers[-1]
        hint = (
            "Rerun with --overwrite to start over, --allow-mixed to add these results alongside, "
            "or use another --out-dir."
        )
        shard = {"index": self.header.shard_index, "count": self.header.num_shards}
        if last.get("shard") != shard:
            raise InvalidInputError(f"{self.path} holds shard {last.get('shard')}, not {shard}. {hint}")
        same = [h for h in headers if h["config_fingerprint"] == self.header.config_fingerprint]
        if not same:
            old_version = last["config"].get(VERSION_KEY, "0.1.0 or earlier")
            if old_version != self.header.package_version:
                raise InvalidInputError(
                    f"{self.path} was written by gradellm-lens {old_version}, and this is "
                    f"{self.header.package_version}: results of two versions may not be comparable. {hint}"
                )
            difference = describe_difference(last["config"], self.header.config)
            raise InvalidInputError(f"{self.path} was written with different options ({difference}). {hint}")
        for label, config in self.header.methods.items():
            for h in same:
                entry = h["methods"].get(label)
                if entry is not None and entry["fingerprint"] != self.header.method_fingerprint(label):
                    raise InvalidInputError(
                        f"{self.path}: method {label!r} was run with different options "
                        f"({describe_difference(entry['config'], config)}). {hint}"
                    )

    def _write(self, record: Mapping[str, Any]) -> None:
        data = memoryview(encode_line(record))
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        os.fsync(self._fd)

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one result line (one write + fsync). NaN/inf values raise :class:`NumericalError`."""
        self._write({"kind": "result", **record})
        self.done.add((record["example_id"], record["fingerprint"]))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dir(directory: Path) -> None:
    """Persist a new directory entry (best effort; not every platform allows opening directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
