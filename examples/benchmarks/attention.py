#!/usr/bin/env python
"""Time and peak memory of ONE LaS attention call, forward and forward+backward, against the definition and SDPA.

Methods (all causal, on `(batch, heads, L, head_dim)` tensors); the `las_*` names follow
`las_attention(..., implementation=...)`:

- `las_sdpa`   our LaS as SDPA calls on per-block rescaled queries and keys (`implementation="sdpa"`, the models'
               default): exact, O(L) memory, FlashAttention on a GPU.
- `las_eager`  our LaS, blocked eager kernel (`implementation="eager"`): O(block x L) memory, also in training.
- `las_flex_attention`  our LaS through `torch.compile(flex_attention)` with the decay as a `score_mod`
               (`implementation="flex_attention"`); forward only on CPU (torch has no CPU flex backward).
- `las_chunk`  LaS-chunk (`chunk_size`, default 1024) through `--chunk-impl` (auto = sdpa).
- `naive`      `las_attention_reference`, the literal definition: materialise the L x L scores, multiply by
               exp(-alpha |i-j|), mask, softmax, average-pool every ROW of the matrix, multiply by V.
- `sdpa`       torch.nn.functional.scaled_dot_product_attention(is_causal=True): plain softmax attention
               (FlashAttention on a GPU), the speed limit; it does not compute LaS.
- `flex_softmax` (only with `--methods`) plain causal softmax through the same compiled flex kernel and block mask
               as `las_flex_attention`, without the decay or the smoothing: what flex itself costs next to `sdpa`.

A flex `BlockMask` is built once per shape outside the timed call, as the model builds it once per forward for all of
its layers. `--check` compares each LaS method's forward output with `las_attention_reference` in float32 (on the whole
sequence, or chunk by chunk for LaS-chunk) where that fits in `--max-reference-bytes`, and prints the max abs
difference.

    python examples/benchmarks/attention.py --device cpu --threads 1 --check
    python examples/benchmarks/attention.py --device cuda --dtype bfloat16 --head-dims 64 --mode fwd_bwd --check
"""

from __future__ import annotations

import argparse
import functools
import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import OOM, fmt_length, fmt_mib, fmt_ms, fmt_ratio, markdown_table  # noqa: E402

from configuration_las import default_las_alphas  # noqa: E402
from las_attention import las_attention, las_attention_reference, las_flex_block_mask  # noqa: E402

METHODS = ("las_sdpa", "las_eager", "las_flex_attention", "las_chunk", "naive", "sdpa", "flex_softmax")
DEFAULT_METHODS = METHODS[:6]  # flex_softmax only when asked for: it explains las_flex_attention's gap to sdpa on CPU
# compute LaS (sdpa and flex_softmax do not): checked with --check
LAS_METHODS = ("las_sdpa", "las_eager", "las_flex_attention", "las_chunk", "naive")
FLEX_METHODS = ("las_flex_attention", "flex_softmax")  # no CPU backward in torch
CHUNK_IMPLEMENTATIONS = ("auto", "eager", "sdpa", "flex_attention")  # auto = sdpa, the models' default
MODES = ("fwd", "fwd_bwd")
CHECK_TOLERANCE = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}
# Estimated peak of las_attention_reference, in L x L tensors of (batch * heads) in its dtype: measured 4.3 (fwd) and
# 5.3 (fwd_bwd) at L=4K (CPU, float32).
NAIVE_LXL_TENSORS = {"fwd": 4, "fwd_bwd": 6}
CSV_COLUMNS = (
    "device",
    "tag",
    "dtype",
    "batch",
    "heads",
    "head_dim",
    "length",
    "method",
    "mode",
    "status",
    "time_ms",
    "time_ms_min",
    "time_ms_max",
    "repeats",
    "peak_mem_mib",
    "max_abs_diff",
    "check",
    "chunk_size",
    "query_block_size",
    "pool_size",
    "pool_mode",
)


# ---------------------------------------------------------------------------------------------------------------------
# The naive definition
# ---------------------------------------------------------------------------------------------------------------------


def naive_footprint_bytes(mode: str, batch: int, heads: int, length: int, dtype: torch.dtype) -> int:
    """Estimated peak of `las_attention_reference` (the `naive` method and the `--check` reference)."""
    return NAIVE_LXL_TENSORS[mode] * batch * heads * length * length * torch.empty((), dtype=dtype).element_size()


def check_reference(query, key, value, alphas, pool_size, pool_mode, chunk_size=None):
    """`las_attention_reference` in float32 on the whole sequence; with `chunk_size`, LaS-chunk: the definition on each
    chunk on its own (one chunk at a time, so that only one chunk's L x L is held)."""
    query, key, value = (t.float() for t in (query, key, value))
    alphas = alphas.float()
    length = query.shape[-2]
    if chunk_size is None or chunk_size >= length:
        return las_attention_reference(query, key, value, alphas, pool_size, pool_mode, True)
    return torch.cat(
        [
            las_attention_reference(
                query[:, :, s : s + chunk_size],
                key[:, :, s : s + chunk_size],
                value[:, :, s : s + chunk_size],
                alphas,
                pool_size,
                pool_mode,
                True,
            )
            for s in range(0, length, chunk_size)
        ],
        dim=-2,
    )


# ---------------------------------------------------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------------------------------------------------


def chunk_implementation(args) -> str:
    """The kernel of `las_chunk`: `--chunk-impl`, with auto = sdpa (the models' default backend)."""
    return "sdpa" if args.chunk_impl == "auto" else args.chunk_impl


def build_methods(args, device, batch, length) -> tuple[dict[str, Callable], torch.Tensor]:
    """method name -> f(q, k, v) -> output. Block masks are built here, once per shape, outside the timed call."""
    alphas = torch.tensor(default_las_alphas(args.heads, args.alpha_max, args.alpha_decades), device=device)
    common_kwargs = dict(
        pool_size=args.pool_size, pool_mode=args.pool_mode, is_causal=True, query_block_size=args.query_block_size
    )
    methods: dict[str, Callable] = {}
    for implementation in ("sdpa", "eager"):
        if f"las_{implementation}" in args.methods:
            methods[f"las_{implementation}"] = functools.partial(
                las_attention, alphas=alphas, **common_kwargs, implementation=implementation
            )
    if "las_flex_attention" in args.methods:
        mask = las_flex_block_mask(None, batch, length, True, None, device)
        methods["las_flex_attention"] = functools.partial(
            las_attention, alphas=alphas, **common_kwargs, implementation="flex_attention", block_mask=mask
        )
    if "las_chunk" in args.methods:
        chunk_impl = chunk_implementation(args)
        chunk_mask = None
        if chunk_impl == "flex_attention":
            chunk_mask = las_flex_block_mask(None, batch, length, True, args.chunk_size, device)
        methods["las_chunk"] = functools.partial(
            las_attention,
            alphas=alphas,
            **common_kwargs,
            chunk_size=args.chunk_size,
            implementation=chunk_impl,
            block_mask=chunk_mask,
        )
    if "naive" in args.methods:
        methods["naive"] = lambda q, k, v: las_attention_reference(q, k, v, alphas, args.pool_size, args.pool_mode)
    if "sdpa" in args.methods:
        methods["sdpa"] = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if "flex_softmax" in args.methods:
        # The same compiled flex kernel and block mask as las_flex_attention, without the decay or smoothing.
        from torch.nn.attention.flex_attention import flex_attention

        compiled_flex = torch.compile(flex_attention, dynamic=False)
        plain_mask = las_flex_block_mask(None, batch, length, True, None, device)
        methods["flex_softmax"] = lambda q, k, v: compiled_flex(q, k, v, block_mask=plain_mask)
    methods = {name: methods[name] for name in args.methods if name in methods}
    return methods, alphas


def skip_reason(args, device, method, mode, dtype, batch, length) -> str | None:
    uses_flex = method in FLEX_METHODS or (method == "las_chunk" and chunk_implementation(args) == "flex_attention")
    if uses_flex and mode == "fwd_bwd" and device.type == "cpu":
        return "n/a (CPU)"  # torch's flex_attention has no CPU backward; las_attention would fall back to eager
    limit = args.method_max_length.get(method)
    if limit is not None and length > limit:
        return "skipped (--method-max-length)"
    if method == "naive" and args.max_naive_bytes is not None:
        if naive_footprint_bytes(mode, batch, args.heads, length, dtype) > args.max_naive_bytes:
            return "skipped (memory budget)"
    return None


def make_step(fn: Callable, leaves: list[torch.Tensor], upstream: torch.Tensor, mode: str) -> Callable[[], object]:
    if mode == "fwd":
        # Detached: torch's CPU flex_attention refuses inputs that require grad even under no_grad (torch 2.13).
        inputs = [leaf.detach() for leaf in leaves]

        def forward() -> None:
            with torch.no_grad():
                fn(*inputs)

        return forward

    def forward_backward() -> None:
        fn(*leaves).backward(upstream)
        for leaf in leaves:  # dropped inside the call: the next call (and its memory measurement) starts clean
            leaf.grad = None

    return forward_backward


# ---------------------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------------------


def run_shape(args, device, dtype, head_dim, length, results: list[dict]) -> None:
    batch = args.batch
    generator = torch.Generator(device=device).manual_seed(args.seed + length + head_dim)
    shape = (batch, args.heads, length, head_dim)
    randn = lambda: torch.randn(shape, generator=generator, device=device).to(dtype)  # noqa: E731
    leaves = [randn().requires_grad_() for _ in range(3)]
    upstream = randn()
    methods, alphas = build_methods(args, device, batch, length)
    base = dict(
        device=device.type,
        tag=args.tag,
        dtype=str(dtype).removeprefix("torch."),
        batch=batch,
        heads=args.heads,
        head_dim=head_dim,
        length=length,
        chunk_size=args.chunk_size,
        query_block_size=args.query_block_size,
        pool_size=args.pool_size,
        pool_mode=args.pool_mode,
    )

    checks: dict[str, tuple[float | None, str]] = {}
    if args.check:
        checks = check_shape(args, device, dtype, length, methods, alphas, leaves)

    for mode in args.modes:
        skipped = {name: skip_reason(args, device, name, mode, dtype, batch, length) for name in methods}
        runnable = {name: make_step(fn, leaves, upstream, mode) for name, fn in methods.items() if not skipped[name]}
        samples, errors = common.time_interleaved(runnable, device, args.warmup, args.repeats)
        for name in methods:
            row = dict(base, method=name, mode=mode, repeats=args.repeats)
            diff, verdict = checks.get(name, (None, ""))
            row.update(max_abs_diff=diff, check=verdict)
            if skipped[name]:
                row["status"] = skipped[name]
            elif name in errors:
                row["status"] = errors[name]
            else:
                row.update(common.measured_columns(runnable[name], samples[name], device, prefix="time"))
            results.append(row)
            common.free_memory(device)
        print(progress_line(results[-len(methods) :]), flush=True)


def check_shape(args, device, dtype, length, methods, alphas, leaves) -> dict[str, tuple[float | None, str]]:
    """Max abs difference of every LaS method's forward output from `las_attention_reference` in float32.

    The reference materialises L x L (per chunk for LaS-chunk); where that exceeds `--max-reference-bytes` the check
    is skipped with a message rather than run out of memory.
    """
    tolerance = CHECK_TOLERANCE.get(dtype, 1e-4)
    checks: dict[str, tuple[float | None, str]] = {}
    leaves = [leaf.detach() for leaf in leaves]
    references: dict[int | None, object] = {}  # chunk size (None: whole sequence) -> reference, computed on demand

    def reference_for(chunk_size: int | None):
        if chunk_size not in references:
            span = min(chunk_size or length, length)
            needed = naive_footprint_bytes("fwd", args.batch, args.heads, span, torch.float32)
            if args.max_reference_bytes is not None and needed > args.max_reference_bytes:
                references[chunk_size] = None
                print(
                    f"--check: skipped at L={length} (the float32 reference needs about {needed / 2**30:.1f} GiB, "
                    f"more than --max-reference-bytes {args.max_reference_bytes / 2**30:.1f} GiB)",
                    flush=True,
                )
            else:
                references[chunk_size] = common.run_or_oom(
                    lambda: check_reference(*leaves, alphas, args.pool_size, args.pool_mode, chunk_size), device
                )
        return references[chunk_size]

    with torch.no_grad():
        for name, fn in methods.items():
            if name not in LAS_METHODS:
                continue
            if skip_reason(args, device, name, "fwd", dtype, args.batch, length):
                checks[name] = (None, "skipped")
                continue
            expected = reference_for(args.chunk_size if name == "las_chunk" and args.chunk_size < length else None)
            if expected is None:
                checks[name] = (None, "skipped (reference too large)")
                continue
            output = common.run_or_oom(functools.partial(fn, *leaves), device) if expected is not OOM else OOM
            if output is OOM:
                checks[name] = (None, "OOM")
                continue
            diff = (output.float() - expected).abs().max().item()
            checks[name] = (diff, "PASS" if diff <= tolerance else "FAIL")
            del output
    references.clear()
    common.free_memory(device)
    return checks


def progress_line(rows: list[dict]) -> str:
    head = rows[0]
    cells = []
    for row in rows:
        if row["status"] == "ok":
            cells.append(
                f"{row['method']} {fmt_ms(row['time_ms'] / 1e3)} ms {fmt_mib(row['peak_mem_mib'] * common.MIB)} MiB"
            )
        else:
            cells.append(f"{row['method']} {row['status']}")
    return f"[{head['dtype']} d={head['head_dim']} L={head['length']} {head['mode']}] " + "; ".join(cells)


# ---------------------------------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------------------------------

# (description, device, mode, dtype or None, head_dim or None, kind, arguments, goal, direction)
TARGETS = (
    (
        "LaS eager training peak memory / naive's, L=4K",
        "cpu",
        "fwd_bwd",
        None,
        None,
        "mem_ratio",
        ("las_eager", "naive", 4096),
        0.25,
        "<=",
    ),
    (
        "LaS sdpa training time / SDPA's, L=1K",
        "cpu",
        "fwd_bwd",
        "float32",
        None,
        "time_ratio",
        ("las_sdpa", "sdpa", 1024),
        1.3,
        "<=",
    ),
    (
        "LaS sdpa training time / SDPA's, L=4K",
        "cpu",
        "fwd_bwd",
        "float32",
        None,
        "time_ratio",
        ("las_sdpa", "sdpa", 4096),
        1.3,
        "<=",
    ),
    (
        "LaS sdpa inference time / SDPA's, L=2K",
        "cpu",
        "fwd",
        "float32",
        None,
        "time_ratio",
        ("las_sdpa", "sdpa", 2048),
        1.3,
        "<=",
    ),
    (
        "LaS sdpa training peak memory / SDPA's, L=4K",
        "cpu",
        "fwd_bwd",
        "float32",
        None,
        "mem_ratio",
        ("las_sdpa", "sdpa", 4096),
        1.3,
        "<=",
    ),
    (
        "LaS flex_attention inference time / SDPA's, L=2K",
        "cpu",
        "fwd",
        None,
        None,
        "time_ratio",
        ("las_flex_attention", "sdpa", 2048),
        2.0,
        "<=",
    ),
    (
        "LaS-chunk time L=64K / L=16K",
        "cpu",
        "fwd_bwd",
        None,
        None,
        "length_ratio",
        ("las_chunk", 65536, 16384),
        4.5,
        "<=",
    ),
    *(
        (
            f"LaS {kernel} {what} / SDPA causal, L={fmt_length(length)}",
            "cuda",
            "fwd_bwd",
            "bfloat16",
            64,
            kind,
            (f"las_{kernel}", "sdpa", length),
            goal,
            "<=",
        )
        for kernel in ("sdpa", "flex_attention")
        for what, kind, goal in (("time", "time_ratio", 1.3), ("peak memory", "mem_ratio", 1.2))
        for length in (4096, 16384)
    ),
    (
        "naive time / LaS sdpa time, L=4K",
        "cuda",
        "fwd_bwd",
        "bfloat16",
        64,
        "time_ratio",
        ("naive", "las_sdpa", 4096),
        10.0,
        ">=",
    ),
    (
        "LaS-chunk time L=64K / L=16K",
        "cuda",
        "fwd_bwd",
        "bfloat16",
        64,
        "length_ratio",
        ("las_chunk", 65536, 16384),
        4.5,
        "<=",
    ),
)


def _lookup(rows, group, method, length):
    for row in rows:
        if (
            (row["dtype"], row["head_dim"], row["mode"]) == group
            and row["method"] == method
            and row["length"] == length
        ):
            return row
    return None


def _metric(row, kind):
    if row is None or row["status"] != "ok":
        return None
    return row["time_ms"] if kind != "mem_ratio" else row["peak_mem_mib"]


def evaluate_targets(rows: list[dict], device_type: str) -> list[list[str]]:
    table = []
    groups = sorted({(row["dtype"], row["head_dim"], row["mode"]) for row in rows}, key=str)
    for description, device, mode, dtype, head_dim, kind, arguments, goal, direction in TARGETS:
        if device != device_type:
            continue
        for group in groups:
            if group[2] != mode or (dtype and group[0] != dtype) or (head_dim and group[1] != head_dim):
                continue
            if kind == "length_ratio":
                method, long, short = arguments
                a, b = _lookup(rows, group, method, long), _lookup(rows, group, method, short)
            else:
                first, second, length = arguments
                a, b = _lookup(rows, group, first, length), _lookup(rows, group, second, length)
            if a is None and b is None:
                continue  # this sweep did not include the target's shape
            x, y = _metric(a, kind), _metric(b, kind)
            if x is None or y is None or y == 0:
                why = next((r["status"] for r in (a, b) if r is not None and r["status"] != "ok"), "not measured")
                table.append(
                    [description, f"{group[0]}, d={group[1]}", f"n/a ({why})", f"{direction} {goal:g}", "n/a"]
                )
                continue
            ratio = x / y
            passed = ratio <= goal if direction == "<=" else ratio >= goal
            table.append(
                [
                    description,
                    f"{group[0]}, d={group[1]}",
                    fmt_ratio(ratio),
                    f"{direction} {goal:g}",
                    "PASS" if passed else "FAIL",
                ]
            )
    if device_type == "cuda":
        for group in groups:
            naive_rows = sorted(
                (r for r in rows if r["method"] == "naive" and (r["dtype"], r["head_dim"], r["mode"]) == group),
                key=lambda r: r["length"],
            )
            if not naive_rows:
                continue
            first_oom = next((r["length"] for r in naive_rows if r["status"].startswith("OOM")), None)
            where = (
                f"first OOM at L={fmt_length(first_oom)}"
                if first_oom
                else f"no OOM up to L={fmt_length(naive_rows[-1]['length'])}"
            )
            table.append([f"naive definition ({group[2]})", f"{group[0]}, d={group[1]}", where, "report", "info"])
    return table


# ---------------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------------


def cell(row: dict | None, key: str) -> str:
    if row is None:
        return ""
    if row["status"] != "ok":
        return row["status"]
    return fmt_ms(row["time_ms"] / 1e3) if key == "time" else fmt_mib(row["peak_mem_mib"] * common.MIB)


def render_markdown(args, device, rows: list[dict]) -> str:
    methods = [m for m in args.methods]
    out = [f"# LaS attention: one call, {device.type} ({args.tag})", ""]
    out.append(f"- machine: {common.machine_line(device)}")
    out.append(f"- command: `{common.command_line()}`")
    out.append(
        f"- batch {args.batch}, {args.heads} heads, causal, pool_size {args.pool_size} ({args.pool_mode}), "
        f"alphas {fmt_alphas(args)}, las_eager query block {args.query_block_size}, las_chunk chunk {args.chunk_size}"
    )
    out.append(
        f"- time: median of {args.repeats} calls after {args.warmup} warm-up call(s), methods interleaved "
        "round-robin; peak memory: bytes allocated by torch above the inputs during one call "
        + (
            "(torch.cuda.max_memory_allocated)"
            if device.type == "cuda"
            else "(CPU allocator events of torch.profiler)"
        )
    )
    out.append("")
    groups = []
    for row in rows:
        group = (row["dtype"], row["head_dim"], row["mode"])
        if group not in groups:
            groups.append(group)
    for dtype, head_dim, mode in groups:
        out.append(f"## {dtype}, head_dim {head_dim}, {'forward + backward' if mode == 'fwd_bwd' else 'forward only'}")
        out.append("")
        lengths = sorted(
            {r["length"] for r in rows if (r["dtype"], r["head_dim"], r["mode"]) == (dtype, head_dim, mode)}
        )
        header = ["L"] + [f"{m} ms" for m in methods] + [f"{m} MiB" for m in methods]
        body = []
        for length in lengths:
            found = {m: _lookup(rows, (dtype, head_dim, mode), m, length) for m in methods}
            body.append(
                [fmt_length(length)]
                + [cell(found[m], "time") for m in methods]
                + [cell(found[m], "mem") for m in methods]
            )
        out += [markdown_table(header, body), ""]
    targets = evaluate_targets(rows, device.type)
    if targets:
        out += ["## Targets", "", markdown_table(["target", "setting", "measured", "goal", "result"], targets), ""]
    if args.check:
        out += ["## Correctness (--check): max |output - las_attention_reference (float32)|, forward", ""]
        checked = [m for m in methods if m in LAS_METHODS]
        header = ["dtype", "head_dim", "L"] + checked + ["tolerance"]
        body, seen = [], set()
        for row in rows:
            key = (row["dtype"], row["head_dim"], row["length"])
            if key in seen:
                continue
            seen.add(key)
            cells = []
            for m in checked:
                found = next(
                    (r for r in rows if (r["dtype"], r["head_dim"], r["length"]) == key and r["method"] == m), None
                )
                if found is None or not found.get("check"):
                    cells.append("")
                elif found["max_abs_diff"] is None:
                    cells.append(found["check"])
                else:
                    cells.append(f"{found['max_abs_diff']:.1e} {found['check']}")
            tolerance = CHECK_TOLERANCE.get(common.DTYPES[row["dtype"]], 1e-4)
            body.append([row["dtype"], row["head_dim"], fmt_length(row["length"]), *cells, f"{tolerance:g}"])
        out += [markdown_table(header, body), ""]
    return "\n".join(out)


def fmt_alphas(args) -> str:
    alphas = default_las_alphas(args.heads, args.alpha_max, args.alpha_decades)
    return "[" + ", ".join(f"{a:.3g}" for a in alphas) + "]"


def plot(path: Path, rows: list[dict], methods: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = []
    for row in rows:
        group = (row["dtype"], row["head_dim"], row["mode"])
        if group not in groups:
            groups.append(group)
    if not groups:
        return
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.6 * len(groups)), squeeze=False)
    markers = dict(zip(METHODS, "os^Dvx*"))
    colors = {method: f"C{i}" for i, method in enumerate(METHODS)}  # the same colour in every panel
    for (dtype, head_dim, mode), (ax_time, ax_mem) in zip(groups, axes):
        for method in methods:
            points = sorted(
                (r["length"], r["time_ms"], r["peak_mem_mib"])
                for r in rows
                if (r["dtype"], r["head_dim"], r["mode"], r["method"]) == (dtype, head_dim, mode, method)
                and r["status"] == "ok"
            )
            if not points:
                continue
            lengths, times, mems = zip(*points)
            style = dict(marker=markers[method], color=colors[method], label=method)
            ax_time.plot(lengths, times, **style)
            ax_mem.plot(lengths, [max(m, 1e-3) for m in mems], **style)
        what = "fwd+bwd" if mode == "fwd_bwd" else "fwd"
        for ax, ylabel in ((ax_time, "time (ms)"), (ax_mem, "peak memory (MiB)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length L")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{ylabel.split(' (')[0]}: {dtype}, head_dim {head_dim}, {what}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------------
# --sweep: LaS sdpa against causal SDPA over lengths, head dims and decays (issue 35's targets)
# ---------------------------------------------------------------------------------------------------------------------

#: Issue 35's targets: las_sdpa / causal SDPA on the same shapes, and LaS-chunk's time per length.
SWEEP_TARGETS = {"fwd": 1.2, "fwd_bwd": 1.1, "memory": 1.1, "chunk": 4.2}
SWEEP_COLUMNS = (
    "device",
    "dtype",
    "batch",
    "heads",
    "head_dim",
    "length",
    "alpha_max",
    "mode",
    "las_ms",
    "sdpa_ms",
    "time_ratio",
    "time_goal",
    "time_result",
    "las_mib",
    "sdpa_mib",
    "memory_ratio",
    "memory_goal",
    "memory_result",
    "extra",
    "repeats",
)


def sweep_batch(args, length: int) -> int:
    """Batch of a sweep shape: `--batch` if given, else about `--sweep-tokens` tokens per call (short sequences are
    timed on realistic batches, not on a few microseconds of work)."""
    return args.batch if args.batch_given else max(1, args.sweep_tokens // length)


def sweep_extra_methods(args, device, alphas) -> dict[str, Callable]:
    """CUDA comparison kernels: SDPA forced to its flash or efficient backend, and LaS through flex_attention."""
    extra: dict[str, Callable] = {}
    if device.type != "cuda":
        return extra
    from torch.nn.attention import SDPBackend, sdpa_kernel

    for name, backend in (
        ("sdpa_flash", SDPBackend.FLASH_ATTENTION),
        ("sdpa_efficient", SDPBackend.EFFICIENT_ATTENTION),
    ):

        def forced(q, k, v, backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        extra[name] = forced
    if args.sweep_flex:
        extra["las_flex_attention"] = functools.partial(
            las_attention,
            alphas=alphas,
            pool_size=args.pool_size,
            pool_mode=args.pool_mode,
            implementation="flex_attention",
        )
    return extra


def run_sweep_shape(args, device, dtype, head_dim, length, alpha_max, rows: list[dict]) -> None:
    batch = sweep_batch(args, length)
    alphas = torch.tensor(default_las_alphas(args.heads, alpha_max, args.alpha_decades), device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed + length + head_dim)
    shape = (batch, args.heads, length, head_dim)
    leaves = [torch.randn(shape, generator=generator, device=device).to(dtype).requires_grad_() for _ in range(3)]
    upstream = torch.randn(shape, generator=generator, device=device).to(dtype)
    methods = {
        "las": functools.partial(
            las_attention,
            alphas=alphas,
            pool_size=args.pool_size,
            pool_mode=args.pool_mode,
            implementation="sdpa",
            max_alpha=float(alpha_max),
        ),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        **sweep_extra_methods(args, device, alphas),
    }
    for mode in args.modes:
        steps = {name: make_step(fn, leaves, upstream, mode) for name, fn in methods.items()}
        samples, errors = common.time_interleaved(steps, device, args.warmup, args.repeats)
        measured = {}
        for name in methods:
            if name in errors:
                measured[name] = None
                continue
            with_memory = name in ("las", "sdpa") and mode == "fwd_bwd"
            if with_memory:
                measured[name] = common.measured_columns(steps[name], samples[name], device, prefix="time")
            else:
                measured[name] = {"time_ms": common.median(samples[name]) * 1e3, "peak_mem_mib": None}
        row = dict(
            device=device.type,
            dtype=str(dtype).removeprefix("torch."),
            batch=batch,
            heads=args.heads,
            head_dim=head_dim,
            length=length,
            alpha_max=alpha_max,
            mode=mode,
            repeats=args.repeats,
        )
        las, sdpa = measured["las"], measured["sdpa"]
        if las is None or sdpa is None:
            row.update(time_result="OOM" if las is None else "sdpa OOM")
        else:
            row.update(las_ms=las["time_ms"], sdpa_ms=sdpa["time_ms"], time_ratio=las["time_ms"] / sdpa["time_ms"])
            row["time_goal"] = SWEEP_TARGETS[mode]
            row["time_result"] = "PASS" if row["time_ratio"] <= row["time_goal"] else "FAIL"
            if mode == "fwd_bwd" and las.get("peak_mem_mib") and sdpa.get("peak_mem_mib"):
                row.update(las_mib=las["peak_mem_mib"], sdpa_mib=sdpa["peak_mem_mib"])
                row["memory_ratio"] = las["peak_mem_mib"] / sdpa["peak_mem_mib"]
                row["memory_goal"] = SWEEP_TARGETS["memory"]
                row["memory_result"] = "PASS" if row["memory_ratio"] <= row["memory_goal"] else "FAIL"
        row["extra"] = " ".join(
            f"{name}={fmt_ms(m['time_ms'] / 1e3) if m else 'OOM'}ms"
            for name, m in measured.items()
            if name not in ("las", "sdpa")
        )
        rows.append(row)
        print(
            f"[sweep {row['dtype']} d={head_dim} L={length} alpha<={alpha_max:g} {mode}] "
            f"time x{fmt_ratio(row.get('time_ratio'))} {row.get('time_result')}; "
            f"memory x{fmt_ratio(row.get('memory_ratio'))} {row.get('memory_result', '')} {row['extra']}",
            flush=True,
        )
        common.free_memory(device)


def run_sweep_chunk(args, device, dtype, rows: list[dict]) -> dict | None:
    """LaS-chunk (sdpa) forward + backward time at the longest `--sweep-chunk-lengths` over the shortest."""
    if len(args.sweep_chunk_lengths) < 2:
        return None
    head_dim = min(args.head_dims)
    alphas = torch.tensor(default_las_alphas(args.heads, 0.1, args.alpha_decades), device=device)
    chunk = functools.partial(
        las_attention,
        alphas=alphas,
        pool_size=args.pool_size,
        pool_mode=args.pool_mode,
        chunk_size=args.chunk_size,
        implementation="sdpa",
        max_alpha=0.1,
    )
    times = {}
    for length in sorted(args.sweep_chunk_lengths):
        generator = torch.Generator(device=device).manual_seed(args.seed + length)
        shape = (1, args.heads, length, head_dim)
        leaves = [torch.randn(shape, generator=generator, device=device).to(dtype).requires_grad_() for _ in range(3)]
        upstream = torch.randn(shape, generator=generator, device=device).to(dtype)
        samples, errors = common.time_interleaved(
            {"chunk": make_step(chunk, leaves, upstream, "fwd_bwd")}, device, args.warmup, args.repeats
        )
        times[length] = None if errors else common.median(samples["chunk"]) * 1e3
        del leaves, upstream
        common.free_memory(device)
    short, long = min(times), max(times)
    result = dict(dtype=str(dtype).removeprefix("torch."), head_dim=head_dim, short=short, long=long)
    result.update(short_ms=times[short], long_ms=times[long])
    if times[short] and times[long]:
        result["ratio"] = times[long] / times[short]
        result["result"] = "PASS" if result["ratio"] <= SWEEP_TARGETS["chunk"] else "FAIL"
    what = f"{fmt_length(long)} / {fmt_length(short)}: x{fmt_ratio(result.get('ratio'))} {result.get('result')}"
    print(f"[sweep chunk {result['dtype']} d={head_dim}] {what}", flush=True)
    return result


def render_sweep(args, device, rows: list[dict], chunks: list[dict]) -> str:
    out = [f"`{args.command}`", "", f"# LaS sdpa against causal SDPA, {device.type} ({args.tag})", ""]
    if args.note:
        out += [f"**Note: {args.note}**", ""]
    out.append(f"- machine: {common.machine_line(device)}")
    out.append(
        f"- {args.heads} heads, causal, pool_size {args.pool_size} ({args.pool_mode}), alphas log-uniform over "
        f"{args.alpha_decades:g} decades up to alpha_max (head 0 at 0), batch "
        + (f"{args.batch}" if args.batch_given else f"max(1, {args.sweep_tokens} // L)")
        + "; las = `las_attention(implementation='sdpa', max_alpha=alpha_max)`, sdpa = "
        "`F.scaled_dot_product_attention(is_causal=True)` on the same q, k, v"
    )
    out.append(
        f"- time: median of {args.repeats} calls after {args.warmup} warm-up call(s), methods interleaved; memory: "
        "peak bytes allocated above the inputs during one forward + backward"
    )
    out.append(
        f"- targets (issue 35): forward <= {SWEEP_TARGETS['fwd']}x, "
        f"forward + backward <= {SWEEP_TARGETS['fwd_bwd']}x, training peak memory <= {SWEEP_TARGETS['memory']}x, "
        "LaS-chunk time longest / shortest length <= "
        f"{SWEEP_TARGETS['chunk']} (4 = linear for 4x the length)"
    )
    out.append("")
    results = (
        [r.get("time_result") for r in rows]
        + [r.get("memory_result") for r in rows]
        + [c.get("result") for c in chunks]
    )
    passed, failed = results.count("PASS"), results.count("FAIL")
    out += [f"**{passed} PASS, {failed} FAIL** of {passed + failed} measured targets.", ""]
    header = [
        "dtype",
        "d",
        "L",
        "batch",
        "alpha_max",
        "mode",
        "las ms",
        "sdpa ms",
        "time ratio",
        "time",
        "las MiB",
        "sdpa MiB",
        "memory ratio",
        "memory",
    ]
    if any(r.get("extra") for r in rows):
        header.append("other kernels")
    body = []
    for r in rows:
        mib = lambda x: "" if x is None else f"{x:.3g}"  # noqa: E731
        line = [
            r["dtype"],
            r["head_dim"],
            fmt_length(r["length"]),
            r["batch"],
            f"{r['alpha_max']:g}",
            r["mode"],
            fmt_ms(r["las_ms"] / 1e3) if r.get("las_ms") else "",
            fmt_ms(r["sdpa_ms"] / 1e3) if r.get("sdpa_ms") else "",
            fmt_ratio(r.get("time_ratio")),
            r.get("time_result", ""),
            mib(r.get("las_mib")),
            mib(r.get("sdpa_mib")),
            fmt_ratio(r.get("memory_ratio")),
            r.get("memory_result", ""),
        ]
        if len(header) > len(line):
            line.append(r.get("extra", ""))
        body.append(line)
    out += [markdown_table(header, body), ""]
    if chunks:
        out += ["## LaS-chunk (sdpa, chunk %d, alpha_max 0.1), forward + backward" % args.chunk_size, ""]
        out.append(
            markdown_table(
                ["dtype", "d", "short L ms", "long L ms", "ratio", "goal", "result"],
                [
                    [
                        c["dtype"],
                        c["head_dim"],
                        f"{fmt_length(c['short'])}: {fmt_ms((c['short_ms'] or math.nan) / 1e3)}",
                        f"{fmt_length(c['long'])}: {fmt_ms((c['long_ms'] or math.nan) / 1e3)}",
                        fmt_ratio(c.get("ratio")),
                        f"<= {SWEEP_TARGETS['chunk']}",
                        c.get("result", "n/a"),
                    ]
                    for c in chunks
                ],
            )
        )
        out.append("")
    return "\n".join(out)


def main_sweep(args, device) -> int:
    stem = args.out / f"attention_sweep_{args.tag}"
    rows: list[dict] = []
    chunks: list[dict] = []
    print(f"# {common.machine_line(device)}", flush=True)

    def write() -> None:
        common.write_csv(stem.with_suffix(".csv"), rows, SWEEP_COLUMNS)
        common.write_text(stem.with_suffix(".md"), render_sweep(args, device, rows, chunks))

    for dtype_name in args.dtype:
        dtype = common.DTYPES[dtype_name]
        for head_dim in args.head_dims:
            for length in sorted(args.lengths):
                for alpha_max in args.sweep_alphas:
                    run_sweep_shape(args, device, dtype, head_dim, length, alpha_max, rows)
                    write()  # after every shape: a run cut off by a time limit keeps what it measured
        chunk = run_sweep_chunk(args, device, dtype, rows)
        if chunk:
            chunks.append(chunk)
            write()
    write()
    print(render_sweep(args, device, rows, chunks))
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common.add_common_arguments(parser, default_repeats=None, default_warmup=None)
    parser.add_argument(
        "--dtype",
        nargs="+",
        choices=sorted(common.DTYPES),
        default=None,
        help="default: float32 on CPU, bfloat16 on CUDA",
    )
    parser.add_argument(
        "--lengths", nargs="+", type=int, default=None, help="default: 256..4096 on CPU, 1K..16K on CUDA"
    )
    parser.add_argument("--head-dims", nargs="+", type=int, default=None, help="default: 32 64 on CPU, 64 on CUDA")
    parser.add_argument("--batch", type=int, default=None, help="default: 1 on CPU, 4 on CUDA")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS))
    parser.add_argument("--mode", choices=("fwd", "fwd_bwd", "both"), default="both")
    parser.add_argument("--chunk-size", type=int, default=1024, help="LaS-chunk chunk length")
    parser.add_argument(
        "--chunk-impl",
        choices=CHUNK_IMPLEMENTATIONS,
        default="auto",
        help="LaS-chunk kernel; auto = sdpa (the models' default)",
    )
    parser.add_argument(
        "--query-block-size",
        type=int,
        default=512,
        help="queries per block of las_eager and las_sdpa (las_sdpa may use fewer: see las_attention)",
    )
    parser.add_argument("--pool-size", type=int, default=3)
    parser.add_argument("--pool-mode", choices=("symmetric", "causal"), default="symmetric")
    parser.add_argument("--alpha-max", type=float, default=0.1, help="largest decay rate B (head 0 has alpha 0)")
    parser.add_argument("--alpha-decades", type=float, default=2.0, help="alphas log-uniform in [B 10^-k, B]")
    parser.add_argument(
        "--max-naive-bytes",
        type=float,
        default=None,
        help="skip naive where its estimated L x L footprint exceeds this (default: 4 GiB on CPU, "
        "none on CUDA, where out-of-memory is caught and reported as OOM)",
    )
    parser.add_argument(
        "--max-reference-bytes",
        type=float,
        default=None,
        help="--check: skip shapes whose float32 reference (L x L per chunk) would exceed this "
        "(default: --max-naive-bytes on CPU, 80%% of the free GPU memory on CUDA)",
    )
    parser.add_argument(
        "--method-max-length",
        nargs="*",
        default=[],
        metavar="METHOD=L",
        help="run METHOD only up to length L, e.g. naive=16384 las_eager=16384",
    )
    parser.add_argument("--check", action="store_true", help="compare every LaS method's forward with the definition")
    parser.add_argument("--no-plot", action="store_true")
    sweep = parser.add_argument_group("--sweep: las_sdpa / causal SDPA ratios against issue 35's targets")
    sweep.add_argument(
        "--sweep",
        action="store_true",
        help="time (forward, forward + backward) and training peak memory of las_sdpa against causal SDPA over "
        "--lengths x --head-dims x --sweep-alphas, and LaS-chunk's time ratio; writes attention_sweep_<tag>.csv/.md",
    )
    sweep.add_argument("--sweep-alphas", nargs="+", type=float, default=[0.0, 0.1, 1.0, 10.0, 100.0])
    sweep.add_argument("--sweep-tokens", type=int, default=4096, help="batch = max(1, this // L) unless --batch")
    sweep.add_argument("--sweep-chunk-lengths", nargs="*", type=int, default=[16384, 65536])
    sweep.add_argument("--sweep-flex", action="store_true", help="also time las_flex_attention (CUDA)")
    sweep.add_argument("--note", default="", help="a line written at the top of the result file (e.g. machine load)")
    args = parser.parse_args(argv)
    args.batch_given = args.batch is not None
    # The command a result file starts with: this process's, or the arguments `main` was called with.
    args.command = (
        common.command_line() if argv is None else "python examples/benchmarks/attention.py " + shlex.join(argv)
    )
    on_cuda = args.device == "cuda"
    if args.sweep and not args.smoke:
        defaults = dict(
            dtype=["bfloat16", "float32"] if on_cuda else ["float32"],
            lengths=[128, 512, 1024, 4096, 16384],
            head_dims=[32, 64],
            batch=1,
            repeats=5 if on_cuda else 3,
            warmup=2 if on_cuda else 1,
        )
    elif args.smoke:
        defaults = dict(dtype=["float32"], lengths=[64, 128], head_dims=[16], batch=2, repeats=2, warmup=1)
        args.heads, args.chunk_size, args.query_block_size = 4, 64, 32
        if not args.method_max_length:  # every new length is one more flex compilation (5-20 s on CPU)
            args.method_max_length = ["las_flex_attention=64"]
    elif on_cuda:
        defaults = dict(
            dtype=["bfloat16"], lengths=[1024, 2048, 4096, 8192, 16384], head_dims=[64], batch=4, repeats=10, warmup=3
        )
    else:
        defaults = dict(
            dtype=["float32"], lengths=[256, 512, 1024, 2048, 4096], head_dims=[32, 64], batch=1, repeats=3, warmup=1
        )
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.max_naive_bytes is None and not on_cuda:
        args.max_naive_bytes = 4 * 2**30
    if args.max_reference_bytes is None:
        args.max_reference_bytes = (
            0.8 * torch.cuda.mem_get_info()[0] if on_cuda and torch.cuda.is_available() else args.max_naive_bytes
        )
    args.modes = list(MODES) if args.mode == "both" else [args.mode]
    limits = {}
    for item in args.method_max_length:
        method, _, length = item.partition("=")
        if method not in METHODS or not length.isdigit():
            parser.error(f"--method-max-length takes METHOD=LENGTH with METHOD in {METHODS}; got {item!r}")
        limits[method] = int(length)
    args.method_max_length = limits
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.apply_common_arguments(args)
    common.raise_compile_limits()
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        return main_sweep(args, device)
    stem = out_dir / f"attention_{args.tag}"
    print(f"# {common.machine_line(device)}", flush=True)
    rows: list[dict] = []
    for dtype_name in args.dtype:
        dtype = common.DTYPES[dtype_name]
        for head_dim in args.head_dims:
            for length in sorted(args.lengths):
                run_shape(args, device, dtype, head_dim, length, rows)
                # rewritten after every shape: a run cut off by a time limit keeps what it measured
                common.write_csv(stem.with_suffix(".csv"), rows, CSV_COLUMNS)
                common.write_text(stem.with_suffix(".md"), render_markdown(args, device, rows))
    markdown = render_markdown(args, device, rows)
    common.write_text(stem.with_suffix(".md"), markdown)
    if not args.no_plot:
        plot(
            stem.with_suffix(".png"),
            rows,
            args.methods,
            f"LaS attention, one call ({args.tag}, batch {args.batch}, {args.heads} heads)",
        )
    print()
    print(markdown)
    failed = [r for r in rows if r.get("check") == "FAIL"]
    if failed:
        print(f"\n--check FAILED for {len(failed)} row(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
