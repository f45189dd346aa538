# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""What the seeded experiments (`study/run_study.py`, `run_lm.py`) share: paired 95% intervals, a lock on an output
folder, atomic writes, and settings hashes that name a run by everything that decides its result."""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Two-sided 95% quantiles of Student's t, t_{0.975, df}, for df = 1 .. 30 (standard tables); larger df use 1.96.
T_975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


class FolderBusyError(Exception):
    """Another process holds the folder's lock."""


def t_quantile(df: int) -> float:
    """t_{0.975, df}: the half-width of a 95% interval is this times the standard error."""
    return T_975[df - 1] if df <= len(T_975) else 1.96


def mean_interval(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, half-width of its 95% interval (t over the values; NaN for one value), count."""
    if len(values) < 2:
        return (values[0] if values else math.nan), math.nan, len(values)
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return statistics.fmean(values), half, len(values)


def welch_interval(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """Difference of means first - second and the half-width of its 95% Welch interval (NaN below 2 values each)."""
    if not first or not second:
        return math.nan, math.nan
    difference = statistics.fmean(first) - statistics.fmean(second)
    if len(first) < 2 or len(second) < 2:
        return difference, math.nan
    a, b = statistics.variance(first) / len(first), statistics.variance(second) / len(second)
    if a + b == 0:
        return difference, 0.0
    df = (a + b) ** 2 / (a**2 / (len(first) - 1) + b**2 / (len(second) - 1))
    return difference, t_quantile(max(1, math.floor(df))) * math.sqrt(a + b)


def verdict(mean: float, half_width: float) -> str:
    """Whether a difference is distinguishable from zero at 95%, computed from its interval."""
    if math.isnan(half_width):
        return "one seed: no interval"
    if mean - half_width > 0:
        return "above zero"
    if mean + half_width < 0:
        return "below zero"
    return "not distinguishable from zero"


def format_interval(mean: float, half: float, count: int | None = None, signed: bool = True) -> str:
    """`+1.23 ± 0.45`, or `1.23 ± 0.45 (5)` with a count; `—` for no value."""
    if math.isnan(mean):
        return "—"
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    text += "" if math.isnan(half) else f" ± {half:.2f}"
    return text + (f" ({count})" if count is not None else "")


def settings_hash(settings: Mapping[str, Any], leave_out: Iterable[str] = ()) -> str:
    """12 hex digits of the SHA-256 of the settings (minus `leave_out`) as canonical JSON."""
    kept = {key: value for key, value in settings.items() if key not in set(leave_out)}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def code_version(root: Path, files: Iterable[str], globs: Iterable[str] = ()) -> str:
    """12 hex digits hashing the names and contents of the code files (relative to `root`) that decide a result."""
    digest = hashlib.sha256()
    paths = [root / name for name in files] + sorted(path for pattern in globs for path in root.glob(pattern))
    for path in paths:
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def write_atomically(path: Path, content: str | bytes) -> None:
    """Write `path` through a temporary file in the same folder and a rename: readers never see half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content)
    os.replace(temporary, path)


class FolderLock:
    """An exclusive lock on a folder (`fcntl.flock` on a file in it, released by the OS if its holder dies, so a
    killed run never leaves a stale lock): one process at a time writes there."""

    def __init__(self, folder: Path, name: str = ".lock"):
        self.path = Path(folder) / name
        self.file = None

    def __enter__(self) -> FolderLock:
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise FolderBusyError(
                f"{self.path.parent} is in use by {holder}: wait for it to finish, or choose another folder"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()}")
        self.file.flush()
        return self

    def __exit__(self, *exc_info: object) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
