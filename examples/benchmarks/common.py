"""Helpers shared by the benchmark scripts: timing, peak memory, machine description, tables and result files.

Nothing here imports `datasets`, `evaluate` or the `lra` package: attention.py and block_mask.py run on a bare GPU
machine that has only torch, transformers and matplotlib. train_throughput.py reads the tasks' vocabularies from
`lra.task_info` (which needs `datasets`), and lra_listops_budget.py trains through run_lra.py (`datasets`, `evaluate`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"

if str(REPO_ROOT) not in sys.path:  # `modeling_las` / `configuration_las` live at the repository root
    sys.path.insert(0, str(REPO_ROOT))

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MIB = 2**20


# ---------------------------------------------------------------------------------------------------------------------
# Device and machine
# ---------------------------------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but torch.cuda.is_available() is False on this machine.")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_tag(device: torch.device) -> str:
    """A short file-name tag: "cpu", or the card's model ("NVIDIA H100 80GB HBM3" -> "h100")."""
    if device.type != "cuda":
        return device.type
    name = torch.cuda.get_device_name(device)
    match = re.search(r"\b([A-Za-z]+\d+[A-Za-z]*)\b", name.replace("NVIDIA", ""))
    tag = match.group(1) if match else name
    return re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-") or "cuda"


def machine_info(device: torch.device) -> dict[str, str]:
    info = {
        "cpu": cpu_model_name(),
        "cpu_cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = f"{props.total_memory / 2**30:.1f}"
        info["cuda"] = str(torch.version.cuda)
    return info


def machine_line(device: torch.device) -> str:
    info = machine_info(device)
    parts = [f"{key}: {value}" for key, value in info.items()]
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------------------------
# Errors that are results
# ---------------------------------------------------------------------------------------------------------------------


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA (and CPU allocator) out-of-memory errors: a measurement result ("OOM"), not a crash."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


OOM = object()  # what `run_or_oom` returns when the call ran out of memory


def run_or_oom(fn: Callable[[], object], device: torch.device) -> object:
    """`fn()`, or `OOM` if it ran out of memory; the memory of the failed call is released before returning.

    Memory is freed only after the `except` block: a live exception keeps the frames of the failed call, and their
    tensors, alive.
    """
    try:
        return fn()
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
    free_memory(device)  # after the `except` block: the exception and its frames are gone by now
    return OOM


# ---------------------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------------------


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call, synchronised on CUDA (CUDA events around the call)."""
    if device.type == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        synchronize(device)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / 1e3
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def time_interleaved(
    candidates: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Time several callables round-robin (one call of each per round) and return every method's samples in seconds.

    Interleaving makes a burst of load from another process hit every method alike instead of one method's whole
    series; report the median of the samples. A callable that runs out of memory is dropped and reported as "OOM"
    (only the text is kept: the exception's traceback would keep its frames' tensors alive).
    """
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    errors: dict[str, str] = {}
    live = dict(candidates)

    def attempt(name: str, fn: Callable[[], object], record: bool) -> None:
        elapsed = run_or_oom(lambda: time_once(fn, device), device)
        if elapsed is OOM:
            errors[name] = "OOM"
            live.pop(name, None)
        elif record:
            samples[name].append(elapsed)

    for _ in range(warmup):
        for name, fn in list(live.items()):
            attempt(name, fn, record=False)
    for _ in range(repeats):
        for name, fn in list(live.items()):
            attempt(name, fn, record=True)
    return samples, errors


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


# ---------------------------------------------------------------------------------------------------------------------
# Peak memory
# ---------------------------------------------------------------------------------------------------------------------


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by torch during one call of `fn`, above what was allocated before it.

    CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, minus `memory_allocated` before the call.
    CPU: torch 2.13 keeps no CPU allocator statistics, so the call runs once under
    `torch.profiler.profile(profile_memory=True)`: every allocation and free of the CPU allocator is recorded as a
    `[memory]` event with its signed size; the running sum of those sizes in time order is the memory held above the
    start, and its maximum is the peak. This counts exactly the tensors torch allocates (not the Python heap, not
    allocator caching), like `max_memory_allocated` on CUDA. It agreed with a fresh-process `ru_maxrss` delta within
    5% on the naive attention at L=2048 (550 MB vs 577 MB).
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    return _cpu_peak_memory_bytes(fn)


def measured_columns(fn: Callable[[], object], times: Sequence[float], device: torch.device, prefix: str) -> dict:
    """The result columns of one benchmarked callable: status, `<prefix>_ms` (median, min, max) and peak memory.

    The peak comes from one extra call of `fn`; running out of memory there is a result, not a crash.
    """
    peak = run_or_oom(lambda: peak_memory_bytes(fn, device), device)
    return {
        "status": "ok" if peak is not OOM else "OOM (memory run)",
        f"{prefix}_ms": median(times) * 1e3,
        f"{prefix}_ms_min": min(times) * 1e3,
        f"{prefix}_ms_max": max(times) * 1e3,
        "peak_mem_mib": None if peak is OOM else peak / MIB,
    }


def _cpu_peak_memory_bytes(fn: Callable[[], object]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        fn()
    handle, trace_path = tempfile.mkstemp(suffix=".json", prefix="las_bench_trace_")
    os.close(handle)
    try:
        prof.export_chrome_trace(trace_path)
        with open(trace_path) as file:
            events = json.load(file)["traceEvents"]
    finally:
        os.unlink(trace_path)
    memory = sorted(
        (event for event in events if event.get("name") == "[memory]" and _is_cpu_memory_event(event)),
        key=lambda event: (event["ts"], event["args"].get("Ev Idx", 0)),
    )
    held = peak = 0
    for event in memory:
        held += int(event["args"]["Bytes"])
        peak = max(peak, held)
    return peak


def _is_cpu_memory_event(event: dict) -> bool:
    device_type = event.get("args", {}).get("Device Type", 0)
    return device_type in (0, "CPU", "cpu")


# ---------------------------------------------------------------------------------------------------------------------
# Result files
# ---------------------------------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _csv_value(row.get(column)) for column in columns})
    os.replace(tmp, path)  # a run cut off by a timeout never leaves a half-written file


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |")
    return "\n".join(lines)


def fmt_ms(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_mib(num_bytes: float | None) -> str:
    if num_bytes is None or (isinstance(num_bytes, float) and math.isnan(num_bytes)):
        return "—"
    mib = num_bytes / MIB
    return f"{mib:.3g}" if mib < 100 else f"{mib:.0f}"


def fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"  # 2.003 must not print as "2" next to a FAIL


def fmt_length(length: int) -> str:
    return f"{length // 1024}K" if length >= 1024 and length % 1024 == 0 else str(length)


def command_line() -> str:
    """The command that produced a result file, for its header."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(REPO_ROOT)
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


def add_common_arguments(parser, *, default_repeats: int, default_warmup: int) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=default_repeats, help="timed calls per measurement (median)")
    parser.add_argument("--warmup", type=int, default=default_warmup, help="untimed calls first (compilation, caches)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR, help="directory for the CSV / markdown / PNG")
    parser.add_argument("--tag", default=None, help="file-name tag (default: 'cpu' or the card, e.g. 'h100')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 1-2 repeats: seconds, for the test suite")


def apply_common_arguments(args) -> torch.device:
    device = resolve_device(args.device)
    if args.smoke and not args.threads:
        args.threads = 1  # tiny ops: one thread is fastest and does not stall when other jobs share the cores
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.tag is None:
        args.tag = device_tag(device)
    return device


def raise_compile_limits() -> None:
    """flex_attention is compiled with `dynamic=False`: one graph per shape. A benchmark sweeps many shapes; without
    this, dynamo stops recompiling after 8 and silently falls back to the uncompiled (L x L materialising) path."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 256)
    if hasattr(torch._dynamo.config, "accumulated_recompile_limit"):
        torch._dynamo.config.accumulated_recompile_limit = 4096
    elif hasattr(torch._dynamo.config, "accumulated_cache_size_limit"):
        torch._dynamo.config.accumulated_cache_size_limit = 4096
