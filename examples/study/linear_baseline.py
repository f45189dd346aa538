#!/usr/bin/env python
# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""The study's reference line: multinomial logistic regression on the same pixels as the study's sequence models.

A sequence model below this line has not learned what the pixels offer. Same data as the study's cells: the first N
training images, averaged to 14x14 (`lra.encode(..., pixel_pool_size=2)`), each pixel standardised with the training
images' mean and deviation (an affine map a linear model absorbs, but one that makes the L2 penalty treat pixels alike
and the optimisation well conditioned: on raw pixels, before commit 42ae8df, this script recorded 73.07% at N = 1,000,
not 78.39%), the L2
penalty chosen on the same first 2,000 validation images, tested on the full test split. Pixel order does not matter
to a linear model, so the line holds for the permuted control too. Writes `linear_baseline.json` into `--out`
(run_study.py draws it).

    python examples/study/linear_baseline.py                   # N = 1,000 and 8,000, into examples/results/study
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "examples")]

from study_support import write_atomically  # noqa: E402

import lra  # noqa: E402

#: L2 penalties tried (on the mean cross-entropy, standardised pixels); the best on validation is tested. A choice at
#: either end of the grid is reported as such (`penalty_at_grid_edge`): the grid should then be widened.
PENALTIES = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--mnist_labels", default="fashion", choices=("digits", "fashion"))
    parser.add_argument("--train_sizes", type=int, nargs="+", default=[1000, 8000])
    parser.add_argument("--max_eval_samples", type=int, default=2000)
    parser.add_argument("--pixel_pool_size", type=int, default=2)
    parser.add_argument("--penalties", type=float, nargs="+", default=list(PENALTIES), help="the L2 grid, ascending")
    parser.add_argument("--out", type=Path, default=Path("examples/results/study"))
    parser.add_argument("--cache_dir", type=Path, default=Path("runs/study/datasets-cache"))
    args = parser.parse_args(argv)
    if min(args.train_sizes) < 1 or args.max_eval_samples < 1 or args.pixel_pool_size < 1:
        parser.error("--train_sizes, --max_eval_samples and --pixel_pool_size must be positive")
    if any(not 0 <= p < float("inf") for p in args.penalties) or args.penalties != sorted(set(args.penalties)):
        parser.error(f"--penalties must be distinct finite numbers >= 0 in ascending order, not {args.penalties}")
    return args


def arrays(split) -> tuple[torch.Tensor, torch.Tensor]:
    rows = split.with_format("numpy")[:]
    return torch.as_tensor(np.stack(rows["pixel_values"]), dtype=torch.float64), torch.as_tensor(rows["labels"])


def standardiser(features: torch.Tensor):
    """Per-pixel (x - mean) / deviation with the training images' statistics (a constant pixel keeps deviation 1)."""
    mean, deviation = features.mean(0), features.std(0)
    deviation = torch.where(deviation > 0, deviation, torch.ones_like(deviation))
    return lambda values: (values - mean) / deviation


def fit(features: torch.Tensor, labels: torch.Tensor, penalty: float, classes: int) -> torch.nn.Linear:
    """Full-batch L-BFGS on mean cross-entropy + penalty * ||W||^2 (a convex problem: the optimum, deterministic)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(features.shape[1], classes, dtype=torch.float64)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    optimizer = torch.optim.LBFGS(
        model.parameters(), max_iter=2000, tolerance_grad=1e-7, tolerance_change=1e-12, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(features), labels) + penalty * model.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return model


def accuracy(model: torch.nn.Linear, features: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(features).argmax(-1) == labels).double().mean())


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    data = lra.load_lra("smnist", args.mnist_dir, cache_dir=args.cache_dir, labels=args.mnist_labels)
    encoded = lra.encode("smnist", data, pixel_pool_size=args.pixel_pool_size)
    validation = arrays(encoded["validation"].select(range(args.max_eval_samples)))
    test = arrays(encoded["test"])
    classes = len(data["train"].features["label"].names)
    result = {
        "task": f"{args.mnist_labels} MNIST at {28 // args.pixel_pool_size}x{28 // args.pixel_pool_size}",
        "command": "python examples/study/linear_baseline.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "test_accuracy": {},
        "validation_accuracy": {},
        "penalty": {},
    }
    penalties = tuple(args.penalties)
    result["penalty_grid"] = list(penalties)
    result["penalty_at_grid_edge"] = {}
    for size in args.train_sizes:
        train = arrays(encoded["train"].select(range(size)))
        standardise = standardiser(train[0])
        train_std, validation_std, test_std = (
            (standardise(features), labels) for features, labels in (train, validation, test)
        )
        scores = {penalty: fit(*train_std, penalty, classes) for penalty in penalties}
        best = max(penalties, key=lambda penalty: (accuracy(scores[penalty], *validation_std), penalty))
        result["validation_accuracy"][str(size)] = accuracy(scores[best], *validation_std)
        result["test_accuracy"][str(size)] = accuracy(scores[best], *test_std)
        result["penalty"][str(size)] = best
        result["penalty_at_grid_edge"][str(size)] = best in (penalties[0], penalties[-1])
        print(
            f"N = {size:,}: penalty {best}, validation {result['validation_accuracy'][str(size)]:.4f}, test "
            f"{result['test_accuracy'][str(size)]:.4f}",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomically(args.out / "linear_baseline.json", json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
