"""Crash-safe JSONL results files: header lines, then one result line per (example, method).

Format (UTF-8, one JSON object per ``\\n``-terminated line, no NaN/inf anywhere):

* ``{"kind": "header", "format": "gradellm-lens-evaluation", "format_version": 1, "config": {...},
  "config_fingerprint": ..., "methods": {label: {"config": {...}, "fingerprint": ...}},
  "shard": {"index": i, "count": n}, "created": ..., "versions": {...}}``: the run's options. A
  later header is appended when a rerun adds methods (or with ``mode="allow_mixed"``);
* ``{"kind": "result", "example_id": ..., "method": label, "fingerprint": ..., "status": ...}``:
  one finished (example, method) pair (see :mod:`.runner` for the other fields).

``fingerprint`` of a method is a hash of the run's common configuration (task, model, metric and
perturbation options) together with that method's resolved options, so a result line says
exactly which configuration produced it. The sampling seed and ``n`` are not part of it: an
example's result does not depend on which other examples were drawn, so a run can be extended.

Crash safety (issue 8): every line goes out in one ``write`` of the whole line, followed by
``fsync``; a kill can therefore leave at most one partial *last* line (no ``\\n``), which
:class:`ResultsFile` detects on the next open and cuts off (``ftruncate`` to the last newline, then
``fsync``) before appending. A malformed line anywhere else is reported as corruption (file and
line), never silently skipped. An exclusive ``flock`` stops two processes from appending to one
file. Opening with a configuration different from the file's raises unless ``mode`` is
``"overwrite"`` (start the file over) or ``"allow_mixed"`` (append under a new header).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ..errors import InvalidInputError, NumericalError

try:  # POSIX advisory locks; without them (Windows) the single-writer check is skipped
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

FORMAT = "gradellm-lens-evaluation"
FORMAT_VERSION = 1
OpenMode = Literal["resume", "overwrite", "allow_mixed"]
OPEN_MODES: tuple[str, ...] = ("resume", "overwrite", "allow_mixed")
_FIELDS: dict[str, dict[str, type]] = {  # what readers index, per line kind
    "header": {"format": str, "config": dict, "config_fingerprint": str, "methods": dict},
    "result": {"example_id": str, "method": str, "fingerprint": str, "status": str},
}


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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
        shard_index, num_shards: which examples this file holds (``i % num_shards == shard_index``).
        versions: library versions (recorded, not compared).
    """

    config: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    shard_index: int = 0
    num_shards: int = 1
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def config_fingerprint(self) -> str:
        return fingerprint(self.config)

    def method_fingerprint(self, label: str) -> str:
        """Fingerprint of (common config, method options): what a result line carries."""
        return fingerprint({"config": self.config_fingerprint, "method": self.methods[label]})

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


def parse_lines(data: bytes, path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of the complete lines of ``data``, and the length of a trailing partial line (0: none).

    Raises:
        InvalidInputError: a complete line is not a JSON object with a ``kind`` (corruption).
    """
    end = data.rfind(b"\n") + 1
    records = []
    for lineno, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not isinstance(record, dict) or record.get("kind") not in ("header", "result"):
            raise InvalidInputError(
                f"{path}:{lineno}: corrupt results line (not an interrupted write, which only affects the last "
                f"line). Move the file away or rerun with --overwrite."
            )
        bad = [k for k, kind in _FIELDS[record["kind"]].items() if not isinstance(record.get(k), kind)]
        if record["kind"] == "header" and not bad:
            entries = record["methods"].items()
            bad = [f"methods.{k}" for k, v in entries if not isinstance(v, dict) or "fingerprint" not in v]
        if bad:
            raise InvalidInputError(
                f"{path}:{lineno}: corrupt {record['kind']} line: missing or invalid {', '.join(bad)}. "
                "Move the file away or rerun with --overwrite."
            )
        records.append(record)
    return records, len(data) - end


def read_results(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """``(headers, results, partial_last_line)`` of a results file, read-only (a run may be appending)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"Results file {path} does not exist.") from None
    records, partial = parse_lines(data, path)
    headers = [r for r in records if r["kind"] == "header"]
    if records and (not headers or records[0]["kind"] != "header"):
        raise InvalidInputError(f"{path}: the first line is not a gradellm-lens evaluation header.")
    if headers and any(h.get("format") != FORMAT for h in headers):
        raise InvalidInputError(f"{path}: not a gradellm-lens evaluation results file.")
    return headers, [r for r in records if r["kind"] == "result"], partial > 0


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
        if mode not in OPEN_MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(OPEN_MODES)}, got {mode!r}.")
        self.path = Path(path)
        self.header = header
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
        with open(self.path, "rb") as f:
            data = f.read()
        records, partial = parse_lines(data, self.path)
        if partial:
            os.ftruncate(self._fd, len(data) - partial)
            os.fsync(self._fd)
        headers = [r for r in records if r["kind"] == "header"]
        results = [r for r in records if r["kind"] == "result"]
        if not headers:
            if results:
                raise InvalidInputError(
                    f"{self.path}: results without a header line; move the file away or --overwrite."
                )
            self._write(self.header.to_record())
            return set(), partial, 0
        if any(h.get("format") != FORMAT for h in headers):
            raise InvalidInputError(f"{self.path} is not a gradellm-lens evaluation results file.")
        if mode == "resume":
            self._check_compatible(headers)
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
