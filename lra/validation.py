"""The one integer check of the package: generators, builders and `examples/run_lra.py` call it.

(`configuration_las.py` keeps its own copy: it ships alone as a checkpoint's remote code and cannot import this.)
"""

from __future__ import annotations

__all__ = ["check_int"]


def check_int(name: str, value: object, least: int = 1, why: str = "") -> int:
    """Return `value` if it is an `int` (not a `bool`) of at least `least`.

    Raises:
        ValueError: `"<name> must be an int >= <least>, got <value>"`, followed by `why` (say what a smaller
            value would break) when the value is an int but too small.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value}{why}")
    return value
