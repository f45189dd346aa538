#!/usr/bin/env python
"""LaS against its baselines on a generated LRA task at full length, each model trained for the same fixed budget.

The `lra_listops_gpu` and `lra_pathfinder_gpu` stages of gpu_check.sh. `--task listops` generates ListOps at the LRA's
size (96,000 / 2,000 / 2,000, `python -m lra generate listops`) and trains LaS and softmax; `--task pathfinder`
generates Pathfinder-32 (contour length 14, 100,000 images split 80 / 10 / 10, `python -m lra generate pathfinder`,
on every core) and trains LaS, softmax and ALiBi. Each model is the task's model (`examples/configs/<task>.json`)
trained through `examples/run_lra.py` with `attn_implementation=sdpa` in bf16 for the same `--max-steps`, also stopped
by a wall-clock cap (`--train-seconds`) so that the stage ends inside the device call. It records test accuracy,
training tokens/s (tokens of the padded batches the model processed), the steps actually run and the budget in
`lra_<task>_<tag>.{md,json}`.

Budgets (estimates: no GPU was lent to the sessions that wrote this): ListOps 3,000 steps of 50 capped at 180 s per
model; Pathfinder-32 4,000 steps of 64 (256,000 images, 3.2 epochs) capped at 150 s per model, about 10 minutes for
the stage with the generation. A run that hits its cap stops early; the results then say how many steps it ran, and
the models compare at equal time instead of equal steps.

    python examples/benchmarks/lra_budget.py --task listops --out examples/benchmarks/results --tag h200   # GPU
    python examples/benchmarks/lra_budget.py --task pathfinder --tiny --out /tmp/lra-tiny                   # CPU

`--tiny` runs the same code at toy size on CPU (a few short examples, one small layer, a few steps, float32): the
rehearsal of the GPU stages in tests/test_benchmarks.py. Needs `datasets` and `evaluate` (run_lra.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import markdown_table  # noqa: E402

from configuration_las import ATTENTION_TYPES  # noqa: E402
from lra import listops  # noqa: E402

EXAMPLES_DIR = common.REPO_ROOT / "examples"
#: The compared attention types per task (each a `LaSConfig.attention_type` value).
COMPARED_ATTENTION_TYPES = {"listops": ("las", "softmax"), "pathfinder": ("las", "softmax", "alibi")}
assert {name for names in COMPARED_ATTENTION_TYPES.values() for name in names} <= set(ATTENTION_TYPES)
# The GPU stages' sizes (ListOps: the LRA's, which are the generator's defaults); --tiny replaces them (see TINY).
FULL = dict(
    num_train=listops.DEFAULT_NUM_TRAIN,
    num_val=listops.DEFAULT_NUM_VAL,
    num_test=listops.DEFAULT_NUM_TEST,
    min_length=listops.DEFAULT_MIN_LENGTH,
    max_length=listops.DEFAULT_MAX_LENGTH,
    seq_length=None,
    max_steps=3_000,
    train_seconds=180.0,
    batch=None,
    bf16=True,
    model_overrides=None,
)
PATHFINDER_FULL = dict(
    num_images=100_000,
    seq_length=None,
    max_steps=4_000,
    train_seconds=150.0,
    batch=None,
    bf16=True,
    model_overrides=None,
)
PATHFINDER_TINY = dict(
    num_images=40,
    seq_length=None,
    max_steps=3,
    train_seconds=60.0,
    batch=4,
    bf16=False,
    model_overrides="hidden_size=16,num_hidden_layers=1,num_attention_heads=2",
)
TINY = dict(
    num_train=64,
    num_val=16,
    num_test=16,
    min_length=5,
    max_length=60,
    seq_length=64,
    max_steps=4,
    train_seconds=60.0,
    batch=8,
    bf16=False,
    model_overrides="hidden_size=16,num_hidden_layers=1,num_attention_heads=2",
)


def generate(task: str, data_dir: Path, sizes: dict, workers: int) -> float:
    """The task's data through the package's command line, as a user would run it; returns the seconds it took."""
    start = time.perf_counter()
    if task == "pathfinder":
        command = [sys.executable, "-m", "lra", "generate", "pathfinder", "--out", str(data_dir), "--no-progress"]
        command += ["--num", str(sizes["num_images"]), "--resolution", "32", "--difficulty", "14"]
        subprocess.run([*command, "--workers", str(workers)], check=True, cwd=common.REPO_ROOT)
        return time.perf_counter() - start
    command = [
        sys.executable,
        "-m",
        "lra",
        "generate",
        "listops",
        "--out",
        str(data_dir),
        "--no-progress",
        "--num-train",
        str(sizes["num_train"]),
        "--num-val",
        str(sizes["num_val"]),
        "--num-test",
        str(sizes["num_test"]),
        "--min-length",
        str(sizes["min_length"]),
        "--max-length",
        str(sizes["max_length"]),
    ]
    subprocess.run(command, check=True, cwd=common.REPO_ROOT)
    return time.perf_counter() - start


def wall_clock_budget(seconds: float):
    """A TrainerCallback that stops training once `seconds` of training have passed, and keeps what the run did."""
    from transformers import TrainerCallback

    class WallClockBudget(TrainerCallback):
        def __init__(self) -> None:
            self.start = 0.0
            self.seconds = 0.0
            self.steps = 0
            self.tokens = 0
            self.stopped_by_clock = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.start > seconds:
                self.stopped_by_clock = True
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            self.seconds = time.perf_counter() - self.start
            self.steps = state.global_step
            self.tokens = int(state.num_input_tokens_seen or 0)

    return WallClockBudget()


def train_one(
    task: str, attention_type: str, data_dir: Path, work_dir: Path, sizes: dict, workers: int, device: str
) -> dict:
    """One run_lra.py training run (in this process); returns its budget and metrics."""
    if str(EXAMPLES_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLES_DIR))
    import run_lra

    budget = wall_clock_budget(sizes["train_seconds"])
    argv = [
        "--task",
        task,
        "--data_dir",
        str(data_dir),
        "--cache_dir",
        str(work_dir / "cache"),
        "--output_dir",
        str(work_dir / attention_type),
        "--attention_type",
        attention_type,
        "--attn_implementation",
        "sdpa",
        "--bf16",
        str(sizes["bf16"]).lower(),
        "--max_steps",
        str(sizes["max_steps"]),
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--load_best_model_at_end",
        "false",
        "--report_to",
        "none",
        "--logging_steps",
        str(max(1, sizes["max_steps"] // 20)),
        "--include_num_input_tokens_seen",
        "true",
        "--preprocessing_num_workers",
        str(workers),
        "--seed",
        "0",
    ]
    if task == "pathfinder":
        argv += ["--pathfinder_resolution", "32", "--pathfinder_difficulty", "14"]
    if sizes["seq_length"]:
        argv += ["--max_length", str(sizes["seq_length"])]
    if sizes["batch"]:
        argv += [
            "--per_device_train_batch_size",
            str(sizes["batch"]),
            "--per_device_eval_batch_size",
            str(sizes["batch"]),
        ]
    if sizes["model_overrides"]:
        argv += ["--config_overrides", sizes["model_overrides"]]
    if device == "cpu":
        argv += ["--use_cpu", "true"]
    metrics = run_lra.main(argv, callbacks=[budget])
    return dict(
        attention_type=attention_type,
        attn_implementation="sdpa",
        precision="bf16" if sizes["bf16"] else "fp32",
        max_steps=sizes["max_steps"],
        train_seconds_cap=sizes["train_seconds"],
        steps=budget.steps,
        stopped_by_clock=budget.stopped_by_clock,
        train_seconds=round(budget.seconds, 2),
        tokens_per_s=round(budget.tokens / budget.seconds, 1) if budget.seconds else None,
        steps_per_s=round(budget.steps / budget.seconds, 3) if budget.seconds else None,
        eval_accuracy=metrics.get("eval_accuracy"),
        test_accuracy=metrics.get("test_accuracy"),
        test_loss=metrics.get("test_loss"),
    )


def render_markdown(task: str, tag: str, sizes: dict, generation_s: float, runs: list[dict], device: str) -> str:
    names = " vs ".join(COMPARED_ATTENTION_TYPES[task])
    out = [f"# {'ListOps' if task == 'listops' else 'Pathfinder-32'}, {names} at an equal training budget ({tag})", ""]
    out.append(f"- machine: {common.machine_line(common.resolve_device(device))}")
    out.append(f"- command: `{common.command_line()}`")
    if task == "listops":
        data = (
            f"generated ListOps {sizes['num_train']:,} / {sizes['num_val']:,} / {sizes['num_test']:,}, "
            f"expressions of {sizes['min_length']} to {sizes['max_length']} tokens"
        )
    else:
        data = f"generated Pathfinder-32, contour length 14, {sizes['num_images']:,} images (80 / 10 / 10 %)"
    out.append(f"- data: {data}, in {generation_s:.1f} s")
    out.append(
        f"- budget per model: {sizes['max_steps']:,} steps, capped at {sizes['train_seconds']:.0f} s of training; "
        f"examples/configs/{task}.json, attn_implementation sdpa, "
        + ("bf16" if sizes["bf16"] else "float32")
        + "; tokens/s counts the tokens of the padded training batches"
    )
    out.append("")
    header = ["attention", "steps run", "stopped by clock", "train s", "tokens/s", "val accuracy", "test accuracy"]
    body = [
        [
            r["attention_type"],
            r["steps"],
            "yes" if r["stopped_by_clock"] else "no",
            f"{r['train_seconds']:.1f}",
            f"{r['tokens_per_s']:.0f}" if r["tokens_per_s"] else "",
            _percent(r["eval_accuracy"]),
            _percent(r["test_accuracy"]),
        ]
        for r in runs
    ]
    out += [markdown_table(header, body), ""]
    return "\n".join(out)


def _percent(value: float | None) -> str:
    return f"{100 * value:.2f}%" if value is not None else ""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--task", choices=tuple(COMPARED_ATTENTION_TYPES), default="listops", help="the generated task"
    )
    parser.add_argument("--tiny", action="store_true", help="toy sizes on CPU: the rehearsal of the GPU stage")
    parser.add_argument("--out", type=Path, default=common.DEFAULT_RESULTS_DIR, help="where the results files go")
    parser.add_argument("--tag", default=None, help="results file tag (default: the card, or 'cpu-tiny' with --tiny)")
    parser.add_argument("--work-dir", type=Path, default=None, help="data and runs (default: a folder under /tmp)")
    parser.add_argument("--max-steps", type=int, default=None, help="training steps per model (default: the task's)")
    parser.add_argument("--train-seconds", type=float, default=None, help="wall-clock cap per model (default: task's)")
    parser.add_argument("--workers", type=int, default=None, help="tokenization processes (default: all cores)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    full, tiny = (FULL, TINY) if args.task == "listops" else (PATHFINDER_FULL, PATHFINDER_TINY)
    sizes = dict(tiny if args.tiny else full)
    for name in ("max_steps", "train_seconds"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
    device = "cpu" if args.tiny else "cuda"
    tag = args.tag or ("cpu-tiny" if args.tiny else common.device_tag(common.resolve_device(device)))
    work_dir = args.work_dir or Path(f"/tmp/lra_{args.task}_budget_{tag}")
    workers = args.workers or (1 if args.tiny else os.cpu_count() or 1)
    data_dir = work_dir / ("listops-1000" if args.task == "listops" else "pathfinder-data")
    generation_s = generate(args.task, data_dir, sizes, workers)
    print(f"=== {args.task} generated in {generation_s:.1f} s: {data_dir}", flush=True)
    runs = []
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"lra_{args.task}_{tag}"
    for attention_type in COMPARED_ATTENTION_TYPES[args.task]:
        runs.append(train_one(args.task, attention_type, data_dir, work_dir, sizes, workers, device))
        # rewritten after every model: a stage cut off by its time limit keeps the first model's result
        common.write_text(
            stem.with_suffix(".json"), json.dumps(dict(sizes=sizes, generation_s=generation_s, runs=runs), indent=2)
        )
        common.write_text(stem.with_suffix(".md"), render_markdown(args.task, tag, sizes, generation_s, runs, device))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
