#!/usr/bin/env python
# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Compare finished `run_lra.py` runs: a markdown table of their measured results and one plot of their curves.

    python examples/compare_runs.py runs/quickstart/las runs/quickstart/softmax --output_dir runs/quickstart

Prints the table and, for every run after the first, a conclusion computed from the test accuracies: the
difference from the first run against its standard error (`compare_accuracies`). Writes both, with
`learning_curves.png` (train loss and validation accuracy against the step, one colour per run), into
`--output_dir`. Every number comes from the runs' own files (`all_results.json`, `trainer_state.json`,
`config.json`, `model.safetensors`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from lra_training import format_number, plot_learning_curves, read_log_history

COLUMNS = (
    "run",
    "attention",
    "parameters",
    "test accuracy",
    "test examples",
    "validation accuracy",
    "final train loss",
    "train time (s)",
    "steps",
)
#: A difference of accuracies counts as distinguishable beyond this many standard errors (about 95% two-sided).
DISTINGUISHABLE_AT = 2.0


def count_parameters(run_dir: Path) -> int | None:
    """Parameters in the saved weights (read from the safetensors header: no tensor is loaded)."""
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        return None
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="numpy") as handle:
        for name in handle.keys():
            shape = handle.get_slice(name).get_shape()
            count = 1
            for size in shape:
                count *= size
            total += count
    return total


def summarize(run_dir: Path, label: str | None = None) -> dict[str, Any]:
    """One row of the table for the run in `run_dir`."""
    results = json.loads((run_dir / "all_results.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    history = read_log_history(run_dir)
    train_losses = [entry["loss"] for entry in history if "loss" in entry]
    last_step = max((entry.get("step", 0) for entry in history), default=0)
    return {
        "run": label or run_dir.name,
        "attention": config.get("attention_type"),
        "parameters": count_parameters(run_dir),
        "test accuracy": results.get("test_accuracy"),
        "validation accuracy": results.get("eval_accuracy"),
        "final train loss": train_losses[-1] if train_losses else None,
        "train time (s)": results.get("train_runtime"),
        "steps": last_step,
        "test examples": results.get("test_samples"),
    }


def standard_error(accuracy: float, examples: int) -> float:
    """The standard error of an accuracy measured on `examples` independent examples: sqrt(p (1 - p) / n)."""
    return math.sqrt(accuracy * (1 - accuracy) / examples)


def compare_accuracies(first: dict[str, Any], second: dict[str, Any]) -> str:
    """One sentence comparing the test accuracies of two table rows, decided by the numbers alone.

    The difference counts as distinguishable when it exceeds `DISTINGUISHABLE_AT` times its standard error,
    sqrt(se1^2 + se2^2) with se = sqrt(p (1 - p) / n) for each run. That treats the two test sets as independent
    samples; two runs evaluated on the same test set are positively correlated, so this is conservative: it may miss
    a real difference, it does not invent one.
    """
    names = f"{first['run']} and {second['run']}"
    for row in (first, second):
        if row["test accuracy"] is None or not row.get("test examples"):
            return f"{names}: no comparison, {row['run']} has no test accuracy (or no test size) in all_results.json."
    p1, n1, p2, n2 = first["test accuracy"], first["test examples"], second["test accuracy"], second["test examples"]
    se1, se2 = standard_error(p1, n1), standard_error(p2, n2)
    difference, se_difference = p1 - p2, math.hypot(se1, se2)
    numbers = (
        f"test accuracy {first['run']} {p1:.4f} ± {se1:.4f} (n = {n1:,}), {second['run']} {p2:.4f} ± {se2:.4f} "
        f"(n = {n2:,}); difference {difference:+.4f} ± {se_difference:.4f} (± one standard error, sqrt(p(1-p)/n))"
    )
    if abs(difference) <= DISTINGUISHABLE_AT * se_difference:
        verdict = (
            f"no difference distinguishable at this size (the difference is within {DISTINGUISHABLE_AT:g} standard "
            "errors)"
        )
    else:
        better, worse = (first, second) if difference > 0 else (second, first)
        ratio = f"{abs(difference) / se_difference:.1f} standard errors" if se_difference > 0 else "no sampling error"
        verdict = f"{better['run']} is more accurate than {worse['run']} ({ratio})"
    if n1 != n2:
        verdict += "; the test sets differ in size, so they are not the same examples"
    return f"{numbers}: {verdict}."


def conclusions(rows: list[dict[str, Any]]) -> list[str]:
    """`compare_accuracies` of the first run with each later one."""
    return [compare_accuracies(rows[0], row) for row in rows[1:]]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [
            f"{row[c]:,}"
            if c == "parameters" and row[c] is not None
            else format_number(row[c], digits=1 if c == "train time (s)" else 4)
            for c in COLUMNS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="output_dir of each finished run_lra.py run")
    parser.add_argument("--labels", nargs="+", help="a name per run (default: the folder names)")
    parser.add_argument("--output_dir", type=Path, default=Path("."), help="where comparison.md and the PNG go")
    parser.add_argument("--title", default="", help="title of the plot and of comparison.md")
    parser.add_argument(
        "--note",
        default="",
        help="what the setup can and cannot show, printed under the computed conclusions (state no result here: "
        "the conclusions come from the numbers)",
    )
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.run_dirs):
        parser.error(f"{len(args.labels)} labels for {len(args.run_dirs)} runs")
    labels = args.labels or [run_dir.name for run_dir in args.run_dirs]
    try:
        rows = [summarize(run_dir, label) for run_dir, label in zip(args.run_dirs, labels)]
        histories = {label: read_log_history(run_dir) for run_dir, label in zip(args.run_dirs, labels)}
    except FileNotFoundError as error:
        parser.exit(2, f"compare_runs.py: error: {error}\n")

    table = markdown_table(rows)
    concluded = "\n".join(f"Conclusion: {line}" for line in conclusions(rows))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    plot = plot_learning_curves(histories, args.output_dir / "learning_curves.png", title=args.title)
    heading = f"# {args.title}\n\n" if args.title else ""
    (args.output_dir / "comparison.md").write_text(
        f"{heading}{table}\n\nAccuracies are fractions of the split; runs: "
        + ", ".join(f"`{run_dir}`" for run_dir in args.run_dirs)
        + ".\n\n"
        + (f"{concluded}\n\n" if concluded else "")
        + (f"{args.note}\n\n" if args.note else "")
        + f"![learning curves]({plot.name})\n"
    )
    print(table)
    if concluded:
        print(f"\n{concluded}")
    if args.note:
        print(f"\n{args.note}")
    return table


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
