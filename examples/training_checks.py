# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Stop a training run whose numbers stop being numbers: non-finite weights, gradients, losses or metrics.

A run that diverges (a learning rate far too large, a config whose values overflow float32 such as
`las_alpha_max=1e39` or `initializer_range=1e30`, a NaN weight decay) otherwise goes on: `Trainer` replaces a NaN
loss by the running average when it logs (`logging_nan_inf_filter`), saves NaN weights, and a model card reports a
finite `train_loss` and an accuracy of argmax over NaN logits. These checks turn it into an error that names the
step and the first tensor affected, raised before anything of that step is saved.

Two ways in:

* `StopOnNonFinite`, a `TrainerCallback` (`run_lra.py` adds it to every run): weights when training starts and
  after every optimizer step, gradients before every optimizer step, logged values and evaluation metrics;
* `check_finite_model` / `check_finite_loss`, for a hand-written training loop (`run_lm.py`): call them after
  `loss.backward()` (gradients) and after `optimizer.step()` (weights).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from transformers import TrainerCallback

#: What a user can change when a run diverges; appended to every error.
ADVICE = (
    "a learning rate too large, a NaN or infinite optimizer setting, or a model config whose values overflow "
    "float32 (e.g. las_alpha_max, initializer_range) are the usual causes"
)


class NonFiniteError(RuntimeError):
    """Training or evaluation produced NaN or infinite values; nothing of the failing step was saved."""


def first_non_finite(named_tensors: Iterable[tuple[str, torch.Tensor | None]]) -> str | None:
    """The name of the first tensor holding a NaN or an infinity, or None when all are finite.

    One reduction over all tensors (the infinity norm, NaN-propagating) on the common path; the per-tensor search
    runs only when that finds something.
    """
    named = [(name, tensor.detach()) for name, tensor in named_tensors if tensor is not None]
    if not named:
        return None
    total = torch.nn.utils.get_total_norm([tensor for _, tensor in named], norm_type=math.inf)
    if torch.isfinite(total):
        return None
    for name, tensor in named:
        if not torch.isfinite(tensor).all():
            return name
    return named[0][0]  # unreachable unless the norm itself overflowed; name the first tensor rather than none


def check_finite_model(model: torch.nn.Module, *, step: int, gradients: bool = False) -> None:
    """Raise `NonFiniteError` if a weight (or, with `gradients=True`, a gradient) of `model` is NaN or infinite.

    Args:
        model: the model being trained.
        step: the optimizer step the check belongs to, for the message.
        gradients: check the gradients (call after the backward pass and before the optimizer step) instead of the
            weights.
    """
    what = "gradients" if gradients else "weights"
    named = ((name, param.grad if gradients else param) for name, param in model.named_parameters())
    name = first_non_finite(named)
    if name is not None:
        raise NonFiniteError(
            f"training became non-finite at step {step}: the {what} of {name} hold NaN or inf; {ADVICE}"
        )


def check_finite_loss(loss: torch.Tensor | float, *, step: int) -> None:
    """Raise `NonFiniteError` if a training loss is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteError(f"training became non-finite at step {step}: the loss is {value}; {ADVICE}")


def check_finite_values(values: Mapping[str, Any], *, step: int, what: str) -> None:
    """Raise `NonFiniteError` if a number among `values` (a Trainer log or metrics dict) is NaN or infinite."""
    bad = {key: value for key, value in values.items() if isinstance(value, float) and not math.isfinite(value)}
    if bad:
        shown = ", ".join(f"{key}={value}" for key, value in bad.items())
        raise NonFiniteError(f"{what} became non-finite at step {step}: {shown}; {ADVICE}")


class StopOnNonFinite(TrainerCallback):
    """Raise `NonFiniteError` out of `Trainer.train` / `Trainer.evaluate` as soon as a number becomes non-finite.

    Checked: the weights when training starts (a resumed or loaded checkpoint) and after every optimizer step; the
    gradients before every optimizer step (except under fp16 loss scaling, where an infinite gradient is the
    scaler's signal to skip the step); every logged value (`grad_norm`, `loss`); every evaluation metric. Trainer
    saves a checkpoint after `on_step_end`, so a step that failed the check is never saved, and the exception
    leaves the calling script before it writes its model card.
    """

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        check_finite_model(model, step=state.global_step)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if not args.fp16:
            check_finite_model(model, step=state.global_step + 1, gradients=True)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        check_finite_model(model, step=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        check_finite_values(logs or {}, step=state.global_step, what="training")

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        check_finite_values(metrics or {}, step=state.global_step, what="evaluation")
        if model is not None:
            check_finite_model(model, step=state.global_step)
