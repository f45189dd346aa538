"""Tiny LaS models and inputs for the model tests, and the running of remote code where our package is not installed.

The shared tester (`tests/test_modeling_common.py`) and the per-head test files build their models here, so that every
head is tested on the same tiny configurations. Attention types and backends are read from the model modules
(`configuration_las.ATTENTION_TYPES`, `las_attention.LAS_IMPLEMENTATIONS`): a new type or backend is tested as soon as
it exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from configuration_las import ATTENTION_TYPES, LaSConfig
from las_attention import LAS_IMPLEMENTATIONS
from modeling_las import (
    LaSForCausalLM,
    LaSForImageClassification,
    LaSForSequenceClassification,
    LaSModel,
    LaSPreTrainedModel,
)

__all__ = [
    "ATTENTION_TYPES",
    "BACKENDS",
    "BLOCK_OUR_PACKAGE",
    "HEADS",
    "HeadCase",
    "backend_params",
    "left_padded_batch",
    "lm",
    "lm_config",
    "random_ids",
    "run_where_package_is_not_installed",
    "tiny_config",
    "tiny_model",
]

BACKENDS: tuple[str, ...] = LAS_IMPLEMENTATIONS


def backend_params(fast: Sequence[str] = ("eager", "sdpa")) -> list:
    """Every backend as a pytest parameter; those not in `fast` (flex_attention: a compilation each) marked slow."""
    return [name if name in fast else pytest.param(name, marks=pytest.mark.slow) for name in BACKENDS]


# -- classifiers ------------------------------------------------------------------------------------------------------


def tiny_config(**overrides: Any) -> LaSConfig:
    """A tiny sequence classifier's configuration (3 labels, 4 heads of width 8, LaS-chunk chunks of 8)."""
    values = dict(
        vocab_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        num_labels=3,
        las_alpha_max=0.2,
        las_pool_size=3,
        las_chunk_size=8,
        attention_query_block_size=16,
    )
    values.update(overrides)
    return LaSConfig(**values)


def tiny_model(seed: int = 0, **overrides: Any) -> LaSForSequenceClassification:
    torch.manual_seed(seed)
    return LaSForSequenceClassification(tiny_config(**overrides)).eval()


def random_ids(*shape: int, vocab: int = 16, seed: int = 1) -> torch.Tensor:
    """Token ids in 1 .. vocab-1 (0 is the padding token)."""
    return torch.randint(1, vocab, shape, generator=torch.Generator().manual_seed(seed))


# -- language models --------------------------------------------------------------------------------------------------


def lm_config(**overrides: Any) -> LaSConfig:
    """A tiny causal LM's configuration: causal smoothing window, and chunks and query blocks small enough that
    prompts and generations cross their boundaries."""
    values = dict(
        vocab_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        las_alpha_max=0.3,
        las_pool_size=3,
        las_pool_mode="causal",
        las_chunk_size=5,
        attention_query_block_size=4,
    )
    values.update(overrides)
    return LaSConfig(**values)


def lm(seed: int = 0, implementation: str = "eager", **overrides: Any) -> LaSForCausalLM:
    torch.manual_seed(seed)
    model = LaSForCausalLM(lm_config(**overrides)).eval()
    model.set_attn_implementation(implementation)
    return model


def left_padded_batch(lengths=(9, 6, 3), width: int = 9, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids left-padded with 0 to `width`, and their mask, as `generate` receives a batch of prompts."""
    ids = random_ids(len(lengths), width, seed=seed)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, width - n :] = 1
    return ids * mask, mask


# -- every head -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadCase:
    """One model head as the shared tester sees it: how to configure it and how to feed it.

    `per_position`: the output has a value per position (compared at real positions only); otherwise one per example.
    """

    name: str
    model_class: type[LaSPreTrainedModel]
    auto_class: type
    output: str
    per_position: bool
    base_config: dict[str, Any] = field(default_factory=dict)
    can_generate: bool = False

    def config(self, **overrides: Any) -> LaSConfig:
        builder = lm_config if self.model_class is LaSForCausalLM else tiny_config
        return builder(**{**self.base_config, **overrides})

    def model(self, seed: int = 0, implementation: str | None = None, **overrides: Any) -> LaSPreTrainedModel:
        torch.manual_seed(seed)
        model = self.model_class(self.config(**overrides)).eval()
        if implementation is not None:
            model.set_attn_implementation(implementation)
        return model

    @property
    def dual(self) -> bool:
        return bool(self.base_config.get("dual_encoder"))

    @property
    def pixels(self) -> bool:
        return self.base_config.get("input_type") == "pixels"

    def inputs(self, batch: int, length: int, seed: int = 1) -> dict[str, torch.Tensor]:
        """Random inputs: token ids or pixels, `(batch, length)` or `(batch, 2, length)` for the dual encoder."""
        shape = (batch, 2, length) if self.dual else (batch, length)
        if self.pixels:
            return {"pixel_values": torch.rand(shape, generator=torch.Generator().manual_seed(seed))}
        return {"input_ids": random_ids(*shape, seed=seed)}

    def padded_batch(
        self, lengths: Sequence[int], width: int, side: str, seed: int = 1
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Inputs padded to `width` on `side` ("left" or "right") with their mask; the dual encoder's second document
        of each example is 3 positions shorter than its first (at least 1), so the two are padded differently."""
        inputs = self.inputs(len(lengths), width, seed)
        mask = torch.zeros((len(lengths), 2, width) if self.dual else (len(lengths), width), dtype=torch.long)
        for row, n in enumerate(lengths):
            for document, real in enumerate((n, max(1, n - 3)) if self.dual else (n,)):
                where = slice(width - real, width) if side == "left" else slice(0, real)
                (mask[row, document] if self.dual else mask[row])[where] = 1
        name, values = next(iter(inputs.items()))
        return {name: values * mask.to(values.dtype)}, mask

    def outputs(self, model: LaSPreTrainedModel, **inputs: Any) -> torch.Tensor:
        return getattr(model(**inputs), self.output)


HEADS: dict[str, HeadCase] = {
    case.name: case
    for case in (
        HeadCase("base", LaSModel, AutoModel, "last_hidden_state", per_position=True),
        HeadCase(
            "sequence_classification",
            LaSForSequenceClassification,
            AutoModelForSequenceClassification,
            "logits",
            False,
        ),
        HeadCase(
            "dual_encoder",
            LaSForSequenceClassification,
            AutoModelForSequenceClassification,
            "logits",
            False,
            base_config={"dual_encoder": True, "num_labels": 2},
        ),
        HeadCase(
            "image_classification",
            LaSForImageClassification,
            AutoModelForImageClassification,
            "logits",
            False,
            base_config={"input_type": "pixels", "pad_token_id": None, "num_labels": 4},
        ),
        HeadCase("causal_lm", LaSForCausalLM, AutoModelForCausalLM, "logits", True, can_generate=True),
    )
}


# -- remote code where the package is not installed -------------------------------------------------------------------

#: The start of a script that runs as on a machine without our package (and, with `--no-pillow`, without Pillow):
#: importing either is an ImportError.
BLOCK_OUR_PACKAGE = textwrap.dedent(
    """
    import importlib.abc, json, sys
    import torch

    BLOCKED = {"modeling_las", "configuration_las", "las_attention", "image_processing_las", "lra", "hub_cards"}
    if "--no-pillow" in sys.argv:
        BLOCKED.add("PIL")

    class BlockOurPackage(importlib.abc.MetaPathFinder):
        # Simulate a machine where las-transformers (and maybe Pillow) is not installed.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, BlockOurPackage())
    for blocked in BLOCKED:
        try:
            __import__(blocked)
            raise SystemExit(f"{blocked} is importable: the test would prove nothing")
        except ImportError:
            pass
    """
)


def run_where_package_is_not_installed(tmp_path: Path, script: str, *args: str) -> dict:
    """Run `script` (which starts with BLOCK_OUR_PACKAGE) with `args` in a fresh interpreter, in `tmp_path`, offline
    and with its own remote-code cache; return the JSON of its last line of output."""
    (tmp_path / "load.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(tmp_path / "load.py"), *map(str, args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
