# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Configuration of LaS (Local and Smooth attention) transformers.

LaS attention comes from Zimerman & Wolf, "Viewing Transformers Through the Lens of Long Convolutions Layers",
ICML 2024. This file is self-contained on purpose: it is copied next to a checkpoint by `save_pretrained` so that
the checkpoint loads with `trust_remote_code=True` where this package is not installed.
"""

from __future__ import annotations

import math

from transformers import PreTrainedConfig

POSITION_EMBEDDING_TYPES = ("none", "sinusoidal", "learned")
ATTENTION_TYPES = ("las", "las_chunk", "softmax")
POOL_MODES = ("symmetric", "causal")
NORM_TYPES = ("layernorm", "batchnorm")
CLASSIFIER_POOLINGS = ("mean", "first", "last")
INPUT_TYPES = ("tokens", "pixels")


def default_las_alphas(num_heads: int, alpha_max: float, decades: float) -> list[float]:
    """The per-head decay rates used when `las_alphas` is not given.

    Head 0 is a global head (alpha = 0), as in the paper. The remaining heads are spread "exponential-uniformly"
    (our reading: log-uniformly) over `[alpha_max * 10**-decades, alpha_max]`.
    """
    if num_heads == 1:
        return [0.0]
    if num_heads == 2 or alpha_max == 0.0:
        return [0.0] + [float(alpha_max)] * (num_heads - 1)
    low, high = math.log10(alpha_max) - decades, math.log10(alpha_max)
    step = (high - low) / (num_heads - 2)
    return [0.0] + [10 ** (low + i * step) for i in range(num_heads - 1)]


class LaSConfig(PreTrainedConfig):
    r"""
    Configuration of a [`LaSModel`] / [`LaSForSequenceClassification`] / [`LaSForCausalLM`]: a transformer whose
    attention is LaS (Local and Smooth) attention, its linear-cost chunked variant, or plain softmax attention as a
    baseline.

    Args:
        vocab_size (`int`, *optional*, defaults to 32):
            Number of token ids the embedding accepts (`input_type="tokens"` only).
        hidden_size (`int`, *optional*, defaults to 128):
            Width of the residual stream.
        num_hidden_layers (`int`, *optional*, defaults to 4):
            Number of transformer layers.
        num_attention_heads (`int`, *optional*, defaults to 8):
            Number of attention heads; the paper uses 8. Must divide `hidden_size`.
        intermediate_size (`int`, *optional*):
            Width of the feed-forward block; defaults to `4 * hidden_size` (the S4 repository's transformer).
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the feed-forward block (any key of `transformers.activations.ACT2FN`).
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on embeddings, residual branches and the classifier input. The paper uses 0.
        attention_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities (before smoothing).
        position_embedding_type (`str`, *optional*, defaults to `"sinusoidal"`):
            `"none"`, `"sinusoidal"` (fixed, as in the S4 repository's LRA transformer) or `"learned"`.
        max_position_embeddings (`int`, *optional*, defaults to 4096):
            Longest sequence accepted when positions are embedded (`"sinusoidal"` or `"learned"`).
        attention_type (`str`, *optional*, defaults to `"las"`):
            `"las"` (LaS attention), `"las_chunk"` (LaS inside non-overlapping chunks of `las_chunk_size`: linear
            cost) or `"softmax"` (ordinary scaled dot-product attention: all alphas 0 and no smoothing).
        las_alpha_max (`float`, *optional*, defaults to 0.1):
            The paper's B: the largest per-head decay rate. Head `c` multiplies its scaled scores by
            `exp(-alpha_c * |i - j|)`; head 0 has alpha 0.
        las_alpha_decades (`float`, *optional*, defaults to 2.0):
            Our interpretation of the paper's "exponential-uniform" spacing: heads 1..H-1 are log-uniform over
            `[las_alpha_max * 10**-las_alpha_decades, las_alpha_max]`.
        las_alphas (`list[float]`, *optional*):
            Explicit per-head decay rates (one per head, each >= 0). Overrides `las_alpha_max`.
        las_pool_size (`int`, *optional*, defaults to 3):
            The paper's P: window of the average pooling applied to every row of the attention matrix. Odd, >= 1;
            1 disables smoothing.
        las_pool_mode (`str`, *optional*, defaults to `"symmetric"`):
            `"symmetric"`: a centred window (zero padding P//2 on both sides, divisor P); our reading of the paper.
            `"causal"`: `A'[i, j] = mean(A[i, j .. j+P-1])`, which keeps weight off keys after the query, so a causal
            model never sees the future.
        las_chunk_size (`int`, *optional*, defaults to 1024):
            Chunk length C of `attention_type="las_chunk"`.
        is_causal (`bool`, *optional*, defaults to `True`):
            Causal attention mask (query i sees keys j <= i), as in the paper's models.
        norm_type (`str`, *optional*, defaults to `"layernorm"`):
            `"layernorm"` or `"batchnorm"` (over channels, as the S4 repository offers).
        prenorm (`bool`, *optional*, defaults to `True`):
            Normalise the input of each residual branch (pre-norm) instead of its output (post-norm).
        classifier_pooling (`str`, *optional*, defaults to `"mean"`):
            How the sequence is reduced before the classifier: mean over real (non-padding) positions, the first
            position, or the last real position.
        input_type (`str`, *optional*, defaults to `"tokens"`):
            `"tokens"`: `input_ids` are embedded. `"pixels"`: `pixel_values` hold one float per position and are
            projected linearly to `hidden_size` (LRA Image, Pathfinder, Path-X).
        dual_encoder (`bool`, *optional*, defaults to `False`):
            The LRA Retrieval form: inputs are shaped `(batch, 2, length)`, both documents are encoded with shared
            weights, and the classifier sees `[u, v, u * v, u - v]`.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the normalisation layers.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of linear and embedding weights.
        attention_query_block_size (`int`, *optional*, defaults to 512):
            The eager backend computes scores for this many queries at a time, so its memory is
            O(block x length) instead of O(length^2). A speed/memory knob only: results do not depend on it.
        pad_token_id (`int`, *optional*, defaults to 0):
            Id of the padding token.
        tie_word_embeddings (`bool`, *optional*, defaults to `False`):
            [`LaSForCausalLM`]: the language-modelling head shares the token embedding's weight.
        num_labels / problem_type:
            As for every `transformers` classification model.
    """

    model_type = "las"

    def __init__(
        self,
        vocab_size: int = 32,
        hidden_size: int = 128,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 8,
        intermediate_size: int | None = None,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.0,
        attention_dropout: float = 0.0,
        position_embedding_type: str = "sinusoidal",
        max_position_embeddings: int = 4096,
        attention_type: str = "las",
        las_alpha_max: float = 0.1,
        las_alpha_decades: float = 2.0,
        las_alphas: list[float] | None = None,
        las_pool_size: int = 3,
        las_pool_mode: str = "symmetric",
        las_chunk_size: int = 1024,
        is_causal: bool = True,
        norm_type: str = "layernorm",
        prenorm: bool = True,
        classifier_pooling: str = "mean",
        input_type: str = "tokens",
        dual_encoder: bool = False,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        attention_query_block_size: int = 512,
        pad_token_id: int | None = 0,
        tie_word_embeddings: bool = False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size if intermediate_size is not None else 4 * hidden_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout = attention_dropout
        self.position_embedding_type = position_embedding_type
        self.max_position_embeddings = max_position_embeddings
        self.attention_type = attention_type
        self.las_alpha_max = las_alpha_max
        self.las_alpha_decades = las_alpha_decades
        self.las_alphas = list(las_alphas) if las_alphas is not None else None
        self.las_pool_size = las_pool_size
        self.las_pool_mode = las_pool_mode
        self.las_chunk_size = las_chunk_size
        self.is_causal = is_causal
        self.norm_type = norm_type
        self.prenorm = prenorm
        self.classifier_pooling = classifier_pooling
        self.input_type = input_type
        self.dual_encoder = dual_encoder
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.attention_query_block_size = attention_query_block_size
        self.tie_word_embeddings = tie_word_embeddings
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.validate_las()

    def validate_las(self) -> None:
        """Raise `ValueError` naming the field and the rule for every inconsistent value."""

        def choice(field: str, allowed: tuple[str, ...]) -> None:
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(f"LaSConfig.{field}={value!r} is not one of {', '.join(map(repr, allowed))}.")

        def positive_int(field: str) -> None:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LaSConfig.{field}={value!r} must be a positive integer.")

        def probability(field: str) -> None:
            value = getattr(self, field)
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"LaSConfig.{field}={value!r} must lie in [0, 1).")

        choice("position_embedding_type", POSITION_EMBEDDING_TYPES)
        choice("attention_type", ATTENTION_TYPES)
        choice("las_pool_mode", POOL_MODES)
        choice("norm_type", NORM_TYPES)
        choice("classifier_pooling", CLASSIFIER_POOLINGS)
        choice("input_type", INPUT_TYPES)
        for field in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "attention_query_block_size",
        ):
            positive_int(field)
        probability("hidden_dropout_prob")
        probability("attention_dropout")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"LaSConfig.hidden_size={self.hidden_size} must be divisible by "
                f"num_attention_heads={self.num_attention_heads}."
            )
        if isinstance(self.las_pool_size, bool) or not isinstance(self.las_pool_size, int) or self.las_pool_size < 1:
            raise ValueError(f"LaSConfig.las_pool_size={self.las_pool_size!r} must be a positive odd integer.")
        if self.las_pool_size % 2 == 0:
            raise ValueError(
                f"LaSConfig.las_pool_size={self.las_pool_size} must be odd, so the smoothing window is centred "
                "and the sequence length is kept."
            )
        if isinstance(self.las_chunk_size, bool) or not isinstance(self.las_chunk_size, int) or self.las_chunk_size < 1:
            raise ValueError(f"LaSConfig.las_chunk_size={self.las_chunk_size!r} must be an integer >= 1.")
        if not 0.0 <= float(self.las_alpha_max):
            raise ValueError(f"LaSConfig.las_alpha_max={self.las_alpha_max!r} must be >= 0.")
        if not float(self.las_alpha_decades) >= 0.0:
            raise ValueError(f"LaSConfig.las_alpha_decades={self.las_alpha_decades!r} must be >= 0.")
        if self.las_alphas is not None:
            if len(self.las_alphas) != self.num_attention_heads:
                raise ValueError(
                    f"LaSConfig.las_alphas has {len(self.las_alphas)} values but num_attention_heads="
                    f"{self.num_attention_heads}: give exactly one alpha per head."
                )
            negative = [a for a in self.las_alphas if not float(a) >= 0.0]
            if negative:
                raise ValueError(f"LaSConfig.las_alphas must all be >= 0 (decay rates); got {negative}.")

    @property
    def head_alphas(self) -> list[float]:
        """The decay rate of every head as used by the model (all zero for `attention_type="softmax"`)."""
        if self.attention_type == "softmax":
            return [0.0] * self.num_attention_heads
        if self.las_alphas is not None:
            return [float(a) for a in self.las_alphas]
        return default_las_alphas(self.num_attention_heads, float(self.las_alpha_max), float(self.las_alpha_decades))

    @property
    def effective_pool_size(self) -> int:
        """The smoothing window as used by the model (1, no smoothing, for `attention_type="softmax"`)."""
        return 1 if self.attention_type == "softmax" else self.las_pool_size

    @property
    def effective_chunk_size(self) -> int | None:
        """The chunk length as used by the model (`None` unless `attention_type="las_chunk"`)."""
        return self.las_chunk_size if self.attention_type == "las_chunk" else None


__all__ = ["LaSConfig", "default_las_alphas"]
