#!/usr/bin/env python
"""Tokens per second and peak memory of one full training step (forward, backward, AdamW step) of
LaSForSequenceClassification, for attention_type las / las_chunk / softmax, on the ListOps and Text model setups.

Model sizes, sequence length and batch come from `examples/configs/<task>.json` ('model' section: LaSConfig fields;
'data.max_length'; 'training.per_device_train_batch_size'), as `examples/run_lra.py` reads them; the vocabulary, the
number of labels and the default length from the task registry (`lra.task_info`, which needs `datasets`), the
attention types and backends from the model modules (`configuration_las.ATTENTION_TYPES`,
`las_attention.LAS_IMPLEMENTATIONS`). `--hidden-size --layers --length --batch` override the sizes. On CPU the batch
defaults to 1 (the configs' 50 / 16 are GPU batches). Inputs are random token ids at full length (no padding); only
the model's step is timed, no data loading.

    python examples/benchmarks/train_throughput.py --device cpu --threads 1 --length 2048
    python examples/benchmarks/train_throughput.py --device cuda --attn-implementation sdpa flex_attention

`--attn-implementation` is the models' `attn_implementation`: "sdpa" (the default; LaS as SDPA calls on rescaled
queries and keys), "eager" or "flex_attention" (trains only on CUDA: torch has no CPU flex backward). "softmax" is the
same model with every decay rate 0 and no smoothing; through "sdpa" it is torch's SDPA itself. The ratio column is LaS
step time / softmax step time for the same task, backend and precision; the target is the ListOps model's LaS step
through sdpa at most 1.3x its softmax step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import fmt_mib, fmt_ms, fmt_ratio, markdown_table  # noqa: E402

from configuration_las import ATTENTION_TYPES, LaSConfig  # noqa: E402
from las_attention import LAS_IMPLEMENTATIONS  # noqa: E402
from lra.tasks import TASK_SPECS  # noqa: E402  (the registry: standard library only)
from modeling_las import LaSForSequenceClassification  # noqa: E402

CONFIG_DIR = common.REPO_ROOT / "examples" / "configs"
# The tasks whose model reads one token sequence: the ones this benchmark's random token ids fit.
TOKEN_TASKS = tuple(name for name, spec in TASK_SPECS.items() if spec.input_kind == "tokens")
STEP_TIME_TARGET = 1.3  # LaS step time / softmax step time, same backend
# The rows judged on CPU (every row is judged on CUDA): the ListOps model's LaS step through sdpa, whose softmax twin
# is torch's SDPA itself.
CPU_TARGET_ROWS = {("listops", "las", "sdpa")}
CSV_COLUMNS = (
    "device",
    "tag",
    "task",
    "attention_type",
    "attn_implementation",
    "precision",
    "batch",
    "length",
    "hidden_size",
    "layers",
    "heads",
    "chunk_size",
    "params",
    "status",
    "step_ms",
    "step_ms_min",
    "step_ms_max",
    "repeats",
    "tokens_per_s",
    "peak_mem_mib",
    "time_vs_softmax",
    "config_source",
)


def task_facts(task: str):
    """`lra.task_info(task)`: vocabulary, labels and default length, as `run_lra.py` builds the model from them."""
    try:
        from lra import task_info
    except ImportError as error:
        raise SystemExit(
            f"train_throughput.py reads the task's vocabulary from lra.task_info, which needs `{error.name}` "
            "(not importable here; on a GPU image carry it as a wheel: examples/benchmarks/fetch_gpu_wheels.sh)"
        ) from error
    return task_info(task)


def task_setup(task: str, args) -> dict:
    """LaSConfig kwargs, length, batch and where they came from, for one task."""
    path = CONFIG_DIR / f"{task}.json"
    if not path.is_file():
        raise SystemExit(f"train_throughput.py: no model setup for {task!r}: {path} is missing")
    raw = json.loads(path.read_text())
    facts = task_facts(task)
    model = {k: v for k, v in raw.get("model", {}).items() if not k.startswith("_")}
    model.update(vocab_size=facts.vocab_size, num_labels=facts.num_labels, pad_token_id=facts.pad_token_id)
    length = raw.get("data", {}).get("max_length", facts.max_length)
    batch = raw.get("training", {}).get("per_device_train_batch_size", 1)
    source = str(path.relative_to(common.REPO_ROOT)) + " + lra.task_info"
    if args.hidden_size is not None:
        model["hidden_size"] = args.hidden_size
    if args.layers is not None:
        model["num_hidden_layers"] = args.layers
    if args.heads is not None:
        model["num_attention_heads"] = args.heads
    if args.chunk_size is not None:
        model["las_chunk_size"] = args.chunk_size
    if args.length is not None:
        length = args.length
    if args.batch is not None:
        batch = args.batch
    elif args.device == "cpu":
        batch = 1
    model["max_position_embeddings"] = max(length, model.get("max_position_embeddings", 0))
    overridden = [
        f for f in ("hidden_size", "layers", "heads", "length", "batch", "chunk_size") if getattr(args, f) is not None
    ]
    if overridden:
        source += " + --" + " --".join(f.replace("_", "-") for f in overridden)
    return dict(model=model, length=length, batch=batch, source=source)


def build_model(setup: dict, attention_type: str, implementation: str, device: torch.device):
    config = LaSConfig(**setup["model"], attention_type=attention_type)  # a fresh config: _from_config mutates it
    model = LaSForSequenceClassification._from_config(config, attn_implementation=implementation).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    return model, optimizer


def make_step(model, optimizer, input_ids, labels, precision: str, device: torch.device):
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16-autocast" else contextlib.nullcontext()
    )

    def step() -> None:
        with autocast:
            loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run_task(task: str, args, device: torch.device, rows: list[dict]) -> None:
    setup = task_setup(task, args)
    length, batch = setup["length"], setup["batch"]
    generator = torch.Generator().manual_seed(args.seed)
    vocab_size, num_labels = setup["model"]["vocab_size"], setup["model"]["num_labels"]
    input_ids = torch.randint(1, vocab_size, (batch, length), generator=generator).to(device)
    labels = torch.randint(0, num_labels, (batch,), generator=generator).to(device)
    for implementation in args.attn_implementation:
        steps, built = {}, {}
        for attention_type in args.attention_types:
            model, optimizer = build_model(setup, attention_type, implementation, device)
            built[attention_type] = model
            steps[attention_type] = make_step(model, optimizer, input_ids, labels, args.precision, device)
        # All attention types of a task and backend are timed round-robin (see common.time_interleaved).
        samples, errors = common.time_interleaved(steps, device, args.warmup, args.repeats)
        group = []
        for attention_type, step in steps.items():
            model = built[attention_type]
            config = model.config
            row = dict(
                device=device.type,
                tag=args.tag,
                task=task,
                attention_type=attention_type,
                attn_implementation=implementation,
                precision=args.precision,
                batch=batch,
                length=length,
                hidden_size=config.hidden_size,
                layers=config.num_hidden_layers,
                heads=config.num_attention_heads,
                chunk_size=config.las_chunk_size if attention_type == "las_chunk" else None,
                params=sum(p.numel() for p in model.parameters()),
                repeats=args.repeats,
                config_source=setup["source"],
            )
            if attention_type in errors:
                row["status"] = errors[attention_type]
            else:
                # Peak above the weights and AdamW state (created by the warm-up steps): activations and gradients.
                row.update(common.measured_columns(step, samples[attention_type], device, prefix="step"))
                row["tokens_per_s"] = batch * length / common.median(samples[attention_type])
            group.append(row)
        softmax = next((r for r in group if r["attention_type"] == "softmax" and r["status"] == "ok"), None)
        for row in group:
            if softmax is not None and row["status"] == "ok":
                row["time_vs_softmax"] = row["step_ms"] / softmax["step_ms"]
            rows.append(row)
            print(progress_line(row), flush=True)
        del steps, built
        common.free_memory(device)


def progress_line(row: dict) -> str:
    head = f"[{row['task']} {row['attention_type']} {row['attn_implementation']} L={row['length']} B={row['batch']}]"
    if row["status"] != "ok":
        return f"{head} {row['status']}"
    return (
        f"{head} {fmt_ms(row['step_ms'] / 1e3)} ms/step, {row['tokens_per_s']:.0f} tok/s, "
        f"{fmt_mib(row['peak_mem_mib'] * common.MIB)} MiB"
    )


def render_markdown(args, device, rows: list[dict]) -> str:
    out = [f"# LaS training step throughput, {device.type} ({args.tag})", ""]
    out.append(f"- machine: {common.machine_line(device)}")
    out.append(f"- command: `{common.command_line()}`")
    out.append(
        f"- one step = forward + backward + AdamW step, precision {args.precision}; time: median of {args.repeats} "
        f"steps after {args.warmup} warm-up step(s), attention types interleaved round-robin; peak memory: bytes "
        "allocated by torch during one step above the weights and optimizer state "
        + (
            "(torch.cuda.max_memory_allocated)"
            if device.type == "cuda"
            else "(CPU allocator events of torch.profiler)"
        )
    )
    sources = sorted({f"{r['task']}: {r['config_source']}" for r in rows})
    out.append(f"- model setups: {'; '.join(sources)}")
    out.append("")
    header = [
        "task",
        "attention",
        "backend",
        "L",
        "batch",
        "hidden x layers",
        "params",
        "step ms",
        "tokens/s",
        "peak MiB",
        "time / softmax",
    ]
    body = []
    for r in rows:
        ok = r["status"] == "ok"
        body.append(
            [
                r["task"],
                r["attention_type"] + (f" (C={r['chunk_size']})" if r["chunk_size"] else ""),
                r["attn_implementation"],
                r["length"],
                r["batch"],
                f"{r['hidden_size']} x {r['layers']}",
                f"{r['params'] / 1e6:.2f}M",
                fmt_ms(r["step_ms"] / 1e3) if ok else r["status"],
                f"{r['tokens_per_s']:.0f}" if ok else "",
                fmt_mib(r["peak_mem_mib"] * common.MIB) if ok else "",
                fmt_ratio(r.get("time_vs_softmax")) if ok else "",
            ]
        )
    out += [markdown_table(header, body), ""]
    targets = []
    for r in rows:
        if r["attention_type"] == "softmax" or r.get("time_vs_softmax") is None:
            continue
        ratio = r["time_vs_softmax"]
        judged = device.type == "cuda" or (r["task"], r["attention_type"], r["attn_implementation"]) in CPU_TARGET_ROWS
        verdict = ("PASS" if ratio <= STEP_TIME_TARGET else "FAIL") if judged else "info"
        targets.append(
            [
                f"{r['attention_type']} step / softmax step",
                f"{r['task']}, {r['attn_implementation']}",
                fmt_ratio(ratio),
                f"<= {STEP_TIME_TARGET:g}",
                verdict,
            ]
        )
    if targets:
        out += ["## Targets", "", markdown_table(["target", "setting", "measured", "goal", "result"], targets), ""]
    return "\n".join(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common.add_common_arguments(parser, default_repeats=None, default_warmup=None)
    parser.add_argument("--tasks", nargs="+", choices=TOKEN_TASKS, default=list(TOKEN_TASKS))
    parser.add_argument("--attention-types", nargs="+", choices=ATTENTION_TYPES, default=list(ATTENTION_TYPES))
    parser.add_argument(
        "--attn-implementation",
        nargs="+",
        choices=LAS_IMPLEMENTATIONS,
        default=None,
        help="default: sdpa and flex_attention on CUDA, sdpa on CPU",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16-autocast"),
        default=None,
        help="default: bf16-autocast on CUDA, fp32 on CPU",
    )
    parser.add_argument("--hidden-size", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--length", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="default: the config's batch on CUDA, 1 on CPU")
    parser.add_argument("--chunk-size", type=int, default=None, help="las_chunk_size (default: LaSConfig's)")
    args = parser.parse_args(argv)
    on_cuda = args.device == "cuda"
    if args.smoke:
        args.tasks = args.tasks if "--tasks" in (argv if argv is not None else sys.argv) else ["listops"]
        for name, value in dict(hidden_size=32, layers=1, length=128, batch=2, chunk_size=64).items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        args.repeats = args.repeats or 2
        args.warmup = args.warmup or 1
    args.repeats = args.repeats or (10 if on_cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (3 if on_cuda else 1)
    args.precision = args.precision or ("bf16-autocast" if on_cuda else "fp32")
    if args.attn_implementation is None:
        args.attn_implementation = ["sdpa", "flex_attention"] if on_cuda else ["sdpa"]
    if not on_cuda and "flex_attention" in args.attn_implementation:
        parser.error(
            "attn_implementation flex_attention trains only on CUDA (torch has no CPU flex_attention backward)"
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = common.apply_common_arguments(args)
    common.raise_compile_limits()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"train_throughput_{args.tag}"
    print(f"# {common.machine_line(device)}", flush=True)
    rows: list[dict] = []
    for task in args.tasks:
        run_task(task, args, device, rows)
        common.write_csv(stem.with_suffix(".csv"), rows, CSV_COLUMNS)
        common.write_text(stem.with_suffix(".md"), render_markdown(args, device, rows))
    markdown = render_markdown(args, device, rows)
    print()
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
