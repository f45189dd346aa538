# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Configuration of LaS (Local and Smooth attention) transformers.

LaS attention comes from Zimerman & Wolf, "Viewing Transformers Through the Lens of Long Convolutions Layers",
ICML 2024. This file is self-contained on purpose: it is copied next to a checkpoint by `save_pretrained` so that
the checkpoint loads with `trust_remote_code=True` where this package is not installed.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import numbers
from collections.abc import Callable
from typing import Any

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

POSITION_EMBEDDING_TYPES = ("none", "sinusoidal", "learned")
ATTENTION_TYPES = ("las", "las_chunk", "softmax", "alibi")
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


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi's head slopes (Press et al., 2022): `2^(-8h/H)` for heads h = 1..H when H is a power of two.

    Otherwise, as in ALiBi's reference code: the slopes of the largest power of two n below H, then every other slope
    of 2n's sequence (`2^(-4h/n)` for odd h) until there are H.
    """

    def geometric(count: int) -> list[float]:
        return [2 ** (-8 * h / count) for h in range(1, count + 1)]

    power = 2 ** math.floor(math.log2(num_heads))
    return geometric(power) + geometric(2 * power)[0::2][: num_heads - power]


# ---------------------------------------------------------------------------------------------------------------------
# Rules of single fields: each takes (field, value), raises a `ValueError` naming both, and returns the value to store.
# ---------------------------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice(allowed: tuple[str, ...]) -> Callable[[str, Any], Any]:
    def rule(field: str, value: Any) -> Any:
        if not isinstance(value, str) or value not in allowed:
            raise ValueError(f"LaSConfig.{field}={value!r} is not one of {', '.join(map(repr, allowed))}.")
        return value

    return rule


def _positive_int(field: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"LaSConfig.{field}={value!r} must be a positive integer.")
    return value


def _chunk_size(field: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"LaSConfig.{field}={value!r} must be an integer >= 1.")
    return value


def _odd_pool_size(field: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"LaSConfig.{field}={value!r} must be a positive odd integer.")
    if value % 2 == 0:
        raise ValueError(
            f"LaSConfig.{field}={value} must be odd, so the smoothing window is centred and the sequence length is "
            "kept."
        )
    return value


def _finite_number(field: str, value: Any) -> float | int:
    # A string such as "0.1" is refused too: `float()` would accept it here, but the model reads the field as a number.
    if not _is_number(value):
        raise ValueError(f"LaSConfig.{field}={value!r} must be a number, not {type(value).__name__}.")
    if not math.isfinite(value):
        raise ValueError(f"LaSConfig.{field}={value!r} must be finite.")
    return value


def _non_negative(field: str, value: Any) -> float | int:
    if not _finite_number(field, value) >= 0:
        raise ValueError(f"LaSConfig.{field}={value!r} must be >= 0.")
    return value


# The model keeps its decay rates in float32: a larger number is inf there.
_FLOAT32_MAX = 3.4028234663852886e38


def _decay_rate(field: str, value: Any) -> float | int:
    # A decay rate of inf gives exp(-inf * 0) = NaN on the diagonal, and NaN logits that still "train"; a finite Python
    # float above float32's range is that inf once the model stores it.
    if _non_negative(field, value) > _FLOAT32_MAX:
        raise ValueError(
            f"LaSConfig.{field}={value!r} is beyond float32's range (about 3.4e38), in which the model keeps its "
            "decay rates; from about 16 on, e^-alpha is already below float32's precision (only the diagonal stays "
            "exact)."
        )
    return value


def _positive(field: str, value: Any) -> float | int:
    if not _finite_number(field, value) > 0:
        raise ValueError(f"LaSConfig.{field}={value!r} must be > 0.")
    return value


def _probability(field: str, value: Any) -> float | int:
    if not 0.0 <= _finite_number(field, value) < 1.0:
        raise ValueError(f"LaSConfig.{field}={value!r} must lie in [0, 1).")
    return value


def _boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"LaSConfig.{field}={value!r} must be true or false.")
    return value


def _activation(field: str, value: Any) -> str:
    if not isinstance(value, str) or value not in ACT2FN:
        raise ValueError(
            f"LaSConfig.{field}={value!r} is not an activation of transformers.activations.ACT2FN "
            "(e.g. 'gelu', 'relu', 'silu')."
        )
    return value


def _alphas(field: str, value: Any) -> list[float | int] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"LaSConfig.{field}={value!r} must be a list of decay rates (one per head) or None.")
    for alpha in value:
        if not _is_number(alpha) or not math.isfinite(alpha) or abs(alpha) > _FLOAT32_MAX:
            raise ValueError(
                f"LaSConfig.{field} must hold finite numbers within float32's range (decay rates); got {alpha!r} in "
                f"{value!r}."
            )
    negative = [alpha for alpha in value if alpha < 0]
    if negative:
        raise ValueError(f"LaSConfig.{field} must all be >= 0 (decay rates); got {negative}.")
    return list(value)


_FIELD_RULES: dict[str, Callable[[str, Any], Any]] = {
    "vocab_size": _positive_int,
    "hidden_size": _positive_int,
    "num_hidden_layers": _positive_int,
    "num_attention_heads": _positive_int,
    "intermediate_size": _positive_int,
    "hidden_act": _activation,
    "hidden_dropout_prob": _probability,
    "attention_dropout": _probability,
    "position_embedding_type": _choice(POSITION_EMBEDDING_TYPES),
    "max_position_embeddings": _positive_int,
    "attention_type": _choice(ATTENTION_TYPES),
    "las_alpha_max": _decay_rate,
    "las_alpha_decades": _non_negative,
    "las_alphas": _alphas,
    "las_pool_size": _odd_pool_size,
    "las_pool_mode": _choice(POOL_MODES),
    "las_chunk_size": _chunk_size,
    "is_causal": _boolean,
    "norm_type": _choice(NORM_TYPES),
    "prenorm": _boolean,
    "classifier_pooling": _choice(CLASSIFIER_POOLINGS),
    "input_type": _choice(INPUT_TYPES),
    "dual_encoder": _boolean,
    "layer_norm_eps": _positive,
    "initializer_range": _non_negative,
    "attention_query_block_size": _positive_int,
}


class UnknownConfigFieldError(TypeError, ValueError):
    """A configuration key that looks like a LaS field but is none (`las_pool_sise=5`): a misspelling would otherwise
    be stored or dropped silently and the model built with the default. A `TypeError`, as for an unexpected keyword
    argument, and a `ValueError`, as for every other bad configuration value."""


@functools.cache
def _transformers_config_keys() -> frozenset[str]:
    """The keys transformers' own configuration knows (attributes and constructor arguments): never refused."""
    parameters = inspect.signature(PreTrainedConfig.__init__).parameters
    return frozenset(PreTrainedConfig().to_dict()) | frozenset(parameters) | frozenset(PreTrainedConfig.attribute_map)


def check_unknown_fields(keys: Any) -> None:
    """Refuse every key that looks like ours but is not: a `las_*` key that is no LaS field, or a close match
    (difflib) of a field name. Other keys (transformers' own, and anything unlike our fields) pass, as transformers
    keeps unknown keys on a configuration."""
    for key in keys:
        if not isinstance(key, str) or key in _FIELD_RULES or key in _transformers_config_keys():
            continue
        close = difflib.get_close_matches(key, _FIELD_RULES, n=1, cutoff=0.8)
        if key.startswith("las_") or close:
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UnknownConfigFieldError(
                f"LaSConfig has no field {key!r} ({hint}the LaS fields are {', '.join(sorted(_FIELD_RULES))})."
            )


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
            cost), `"softmax"` (ordinary scaled dot-product attention: all alphas 0 and no smoothing) or `"alibi"`
            (the baseline of a standard locality bias: softmax with ALiBi's additive `-m_h |i - j|`, slopes
            `alibi_slopes(num_attention_heads)`, no smoothing; the `las_*` fields are not used).
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
            Queries per block of the eager and sdpa kernels: the eager kernel (also used by `"sdpa"` for
            bidirectional attention) computes scores for this many queries at a time, so its memory is O(block x
            length) instead of O(length^2); the causal sdpa kernel makes one SDPA call per block (with fewer queries
            where the decay would leave the dtype's range). `"flex_attention"` does not use it. A speed/memory knob
            only: results do not depend on it.
        pad_token_id (`int`, *optional*, defaults to 0):
            Id of the padding token.
        tie_word_embeddings (`bool`, *optional*, defaults to `False`):
            [`LaSForCausalLM`]: the language-modelling head shares the token embedding's weight.
        num_labels / problem_type:
            As for every `transformers` classification model.

    Every field is checked when it is set (by the constructor, `from_pretrained` / `from_dict` overrides or
    assignment), with a `ValueError` naming it. A key that looks like a LaS field but is none (`las_pool_sise`, any
    unknown `las_*` key, a close misspelling of a field) is an `UnknownConfigFieldError`; transformers' own keys and
    unrelated extra keys are kept, as transformers does.
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
        self.las_alphas = las_alphas
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
        check_unknown_fields(kwargs)
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.validate_las()

    def __setattr__(self, key: str, value: Any) -> None:
        # Every assignment of a LaS field is checked on its own, whichever route sets it: the constructor,
        # `from_pretrained(dir, field=value)` and `from_dict(..., field=value)` (both assign overrides one by one after
        # building the config), or a user's `config.field = value`. Rules between fields are checked by
        # `validate_las` at the end of each route and when a model is built, so that fields may be changed one after
        # the other (e.g. `hidden_size` then `num_attention_heads`) without tripping over an intermediate state.
        rule = _FIELD_RULES.get(key)
        if rule is not None:
            value = rule(key, value)
        else:
            check_unknown_fields((key,))  # `config.las_pool_sise = 5` would set nothing the model reads
        super().__setattr__(key, value)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> LaSConfig | tuple[LaSConfig, dict[str, Any]]:
        """As `PreTrainedConfig.from_dict`, then the rules between fields (the overrides in `kwargs` included).

        An override that is no attribute of the config comes back unused: `from_pretrained(dir, las_pool_sise=5)` would
        drop it without a word. One that looks like a LaS field is an `UnknownConfigFieldError` instead.
        """
        return_unused_kwargs = kwargs.pop("return_unused_kwargs", False)
        config, unused = super().from_dict(config_dict, return_unused_kwargs=True, **kwargs)
        check_unknown_fields(unused)
        config.validate_las()
        return (config, unused) if return_unused_kwargs else config

    def validate(self) -> None:
        """The library's checks (run by `save_pretrained`) and ours."""
        super().validate()
        self.validate_las()

    def validate_las(self) -> None:
        """Raise `ValueError` naming the field and the rule for every inconsistent value."""
        for field, rule in _FIELD_RULES.items():
            rule(field, getattr(self, field))
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"LaSConfig.hidden_size={self.hidden_size} must be divisible by "
                f"num_attention_heads={self.num_attention_heads}."
            )
        if self.attention_type == "alibi" and self.las_alphas is not None:
            raise ValueError(
                "LaSConfig.las_alphas is set but attention_type='alibi' uses ALiBi's own head slopes "
                "(alibi_slopes): drop las_alphas, or choose attention_type='las'."
            )
        if self.las_alphas is not None and len(self.las_alphas) != self.num_attention_heads:
            raise ValueError(
                f"LaSConfig.las_alphas has {len(self.las_alphas)} values but num_attention_heads="
                f"{self.num_attention_heads}: give exactly one alpha per head."
            )

    @property
    def position_bias(self) -> str:
        """How `head_alphas` enter the scores (`las_attention`'s `position_bias`): "alibi" or LaS's "decay"."""
        return "alibi" if self.attention_type == "alibi" else "decay"

    @property
    def head_alphas(self) -> list[float]:
        """The rate of every head as used by the model: LaS decay rates, ALiBi slopes for `attention_type="alibi"`,
        all zero for `attention_type="softmax"`."""
        if self.attention_type == "softmax":
            return [0.0] * self.num_attention_heads
        if self.attention_type == "alibi":
            return alibi_slopes(self.num_attention_heads)
        if self.las_alphas is not None:
            return [float(a) for a in self.las_alphas]
        return default_las_alphas(self.num_attention_heads, float(self.las_alpha_max), float(self.las_alpha_decades))

    @property
    def effective_pool_size(self) -> int:
        """The smoothing window as used by the model (1, no smoothing, for `attention_type` "softmax" and "alibi")."""
        return 1 if self.attention_type in ("softmax", "alibi") else self.las_pool_size

    @property
    def effective_chunk_size(self) -> int | None:
        """The chunk length as used by the model (`None` unless `attention_type="las_chunk"`)."""
        return self.las_chunk_size if self.attention_type == "las_chunk" else None


__all__ = ["LaSConfig", "UnknownConfigFieldError", "alibi_slopes", "check_unknown_fields", "default_las_alphas"]
