"""A test hook that kills the process at a named point, so fault-injection tests are deterministic.

The code that writes data calls `kill_point` at the moments where a crash is most harmful (between
Pathfinder batches, while a checkpoint or an export is half written). Nothing happens unless the environment
variable `LAS_KILL_AT` names that point: `LAS_KILL_AT=pathfinder-batch@3` sends SIGKILL to the process the
third time it reaches `pathfinder-batch` (`@N` omitted: the first time). The points:

* `pathfinder-batch`: `lra.pathfinder.generate_pathfinder`, after a batch was moved into place;
* `listops-swap`: `lra.listops.generate_listops` with `overwrite`, after the old task folder was moved
  aside and before the new one is moved in;
* `export-shards`: `lra.export.export_lra`, after the first Parquet shard was written to its staging folder;
* `export-swap`: `lra.export.export_lra`, after the previous configuration folder was moved aside and
  before the new one and the README are moved in;
* `checkpoint-save`: `examples/run_lra.py`, after a checkpoint's weights were written and before its optimizer
  and `trainer_state.json`.

SIGKILL, unlike an exception, runs no `finally` block and no `atexit` handler: what is left on disk is what a
power cut or the out-of-memory killer would leave.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["KILL_AT_VARIABLE", "kill_point"]

KILL_AT_VARIABLE = "LAS_KILL_AT"
_reached: Counter[str] = Counter()


def kill_point(name: str) -> None:
    """SIGKILL this process if `LAS_KILL_AT` is `name` (first time reached) or `name@N` (N-th time)."""
    wanted = os.environ.get(KILL_AT_VARIABLE)
    if not wanted:
        return
    point, _, count = wanted.partition("@")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == (int(count) if count else 1):
        os.kill(os.getpid(), signal.SIGKILL)
