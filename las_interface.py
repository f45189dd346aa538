# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""LaS attention in any transformers model: `attn_implementation="las"` through transformers' `AttentionInterface`.

LaS adds no parameters: it changes the attention function alone. transformers lets a third party register an attention
function (`AttentionInterface`) and the mask it needs (`AttentionMaskInterface`) under a name; every model whose
attention calls `ALL_ATTENTION_FUNCTIONS.get_interface(config._attn_implementation, ...)` (Llama, Qwen2, Mistral,
GPT-NeoX, Phi, BERT, ModernBERT and most current models) can then select it:

    import las_interface
    las_interface.register()
    model = AutoModelForCausalLM.from_config(LlamaConfig(..., las_pool_size=3), attn_implementation="las")

`"las"` is LaS attention, `"las_chunk"` LaS-chunk (LaS inside non-overlapping chunks of `las_chunk_size`). The settings
are read from the host model's config at every call, with LaSConfig's defaults where a field is absent or `None`, and
checked by LaSConfig's own field rules (an error names the field):

- `las_alpha_max`, `las_alpha_decades`, `las_alphas`: the per-head decay rates (`LaSConfig`'s meaning).
- `las_pool_size`: the smoothing window P (odd; 1 = none).
- `las_pool_mode`: `"causal"` (the default, and the only one allowed, where the attention is causal: the symmetric
  window looks ahead) or `"symmetric"` (the default of bidirectional encoders).
- `las_chunk_size`: the chunk length of `"las_chunk"`.
- `las_kernel`: which kernel of `las_attention` runs the call: `"sdpa"` (default; causal attention as
  `scaled_dot_product_attention` calls, bidirectional on the eager kernel), `"eager"` or `"flex_attention"`.

Set them on the config (`LlamaConfig(..., las_pool_size=3)`, `config.las_pool_size = 3`) or as keyword arguments of
`from_config` / `from_pretrained` / `AutoConfig.from_pretrained` (`register()` declares the fields on
`PreTrainedConfig`, which makes transformers route such keywords to the config, and does the same in `from_config`).

What the attention function honours (and refuses, with an error, where it cannot): the module's `scaling`, attention
dropout, grouped-query attention (key/value heads repeated), left and right padding (a padded position behaves as if it
did not exist, as in `las_attention`), `position_ids` (LaS measures distances in tokens: positions must advance by one
per real token; packed sequences and gaps are refused), transformers' `DynamicCache` (it holds raw keys and values; a
decoding step re-smooths the cached raw values, so it gives the logits of a full forward), sliding windows and other
mask patterns only where they change nothing (a window wider than the sequence), `output_attentions` (eager kernel).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AttentionInterface, PreTrainedConfig, PreTrainedModel
from transformers.integrations.sdpa_attention import repeat_kv
from transformers.masking_utils import (
    AttentionMaskInterface,
    bidirectional_mask_function,
    causal_mask_function,
    prepare_padding_mask,
)

from configuration_las import _FIELD_RULES, LaSConfig, _choice, default_las_alphas
from las_attention import LAS_IMPLEMENTATIONS, las_attention, las_attention_step, las_smooth_new_values

#: The names `register()` makes valid `attn_implementation` values: LaS attention and LaS-chunk.
LAS_ATTENTION_NAMES = ("las", "las_chunk")

#: The host-config fields LaS reads; `None` (or absent) means LaSConfig's default.
LAS_CONFIG_FIELDS = (
    "las_alpha_max",
    "las_alpha_decades",
    "las_alphas",
    "las_pool_size",
    "las_pool_mode",
    "las_chunk_size",
    "las_kernel",
)

# The rule of every field: LaSConfig's own, plus the kernel choice that only host models have (LaSModel selects its
# kernel with `attn_implementation`, which here names LaS itself).
_RULES: dict[str, Callable[[str, Any], Any]] = {
    **{field: _FIELD_RULES[field] for field in LAS_CONFIG_FIELDS if field in _FIELD_RULES},
    "las_kernel": _choice(LAS_IMPLEMENTATIONS),
}
# LaSConfig's defaults, read from its signature so that there is one place to change them.
_LAS_CONFIG_DEFAULTS = {
    name: parameter.default for name, parameter in inspect.signature(LaSConfig.__init__).parameters.items()
}
_DEFAULTS: dict[str, Any] = {
    **{field: _LAS_CONFIG_DEFAULTS[field] for field in LAS_CONFIG_FIELDS if field in _LAS_CONFIG_DEFAULTS},
    "las_kernel": "sdpa",
}


# ---------------------------------------------------------------------------------------------------------------------
# Settings from the host config
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaSSettings:
    """What one LaS call needs, as read from a host model's config."""

    alphas: tuple[float, ...]
    pool_size: int
    pool_mode: str
    chunk_size: int | None
    kernel: str


def _checked(config: PreTrainedConfig, field: str) -> Any:
    """The value of `field` on `config` after LaSConfig's rule, or `None` where it is not set."""
    value = getattr(config, field, None)
    if value is None:
        return None
    try:
        return _RULES[field](field, value)
    except ValueError as error:
        # The rules name LaSConfig; here the field lives on the host's config.
        raise ValueError(str(error).replace("LaSConfig.", f"{type(config).__name__}.", 1)) from None


def las_settings(
    config: PreTrainedConfig, num_heads: int | None, is_causal: bool | None, chunked: bool = False
) -> LaSSettings:
    """Read and check the LaS fields of a host model's config.

    Args:
        config: the host model's config (`module.config` in an attention call).
        num_heads: the attention's number of query heads (one decay rate each), or `None` to skip the per-head check.
        is_causal: whether the attention is causal (sets the default pooling mode and refuses the symmetric window),
            or `None` where it is not known yet (at model construction).
        chunked: LaS-chunk (`"las_chunk"`): chunks of `las_chunk_size`.

    Raises `ValueError` naming the field (e.g. `LlamaConfig.las_pool_size=2 must be odd, ...`).
    """
    values = {field: _checked(config, field) for field in LAS_CONFIG_FIELDS}
    name = type(config).__name__
    pool_mode = values["las_pool_mode"]
    if pool_mode is None:
        pool_mode = "causal" if is_causal in (True, None) else "symmetric"
    elif pool_mode == "symmetric" and is_causal:
        raise ValueError(
            f"{name}.las_pool_mode='symmetric' cannot be used in a causal model: the centred window smooths the "
            "attention weights of key j with those of keys up to j + las_pool_size // 2, so the output at position t "
            "would depend on tokens after t. Use las_pool_mode='causal' (the default for causal models)."
        )
    alphas = values["las_alphas"]
    if alphas is not None and num_heads is not None and len(alphas) != num_heads:
        raise ValueError(
            f"{name}.las_alphas has {len(alphas)} values but the attention has {num_heads} heads: give exactly one "
            "decay rate per head."
        )
    if alphas is None and num_heads is not None:
        alpha_max, decades = (
            _DEFAULTS[f] if values[f] is None else values[f] for f in ("las_alpha_max", "las_alpha_decades")
        )
        alphas = default_las_alphas(num_heads, float(alpha_max), float(decades))
    setting = {field: _DEFAULTS[field] if values[field] is None else values[field] for field in values}
    return LaSSettings(
        alphas=tuple(float(a) for a in alphas or ()),
        pool_size=setting["las_pool_size"],
        pool_mode=pool_mode,
        chunk_size=setting["las_chunk_size"] if chunked else None,
        kernel=setting["las_kernel"],
    )


# ---------------------------------------------------------------------------------------------------------------------
# The attention function
# ---------------------------------------------------------------------------------------------------------------------

# Keyword arguments some models pass that change the attention in ways LaS does not implement.
_UNSUPPORTED_KWARGS = {
    "softcap": "logit soft-capping (Gemma 2)",
    "position_bias": "an additive position bias (T5-style relative positions)",
    "s_aux": "attention sinks",
    "sinks": "attention sinks",
}


def _refuse_unsupported(kwargs: dict[str, Any], name: str) -> None:
    for key, what in _UNSUPPORTED_KWARGS.items():
        if kwargs.get(key) is not None:
            raise ValueError(
                f"attn_implementation={name!r}: this model passes `{key}` ({what}), which LaS attention does not "
                "implement; it would be dropped silently. Use the model's own attention implementation."
            )


def _key_padding(attention_mask: Any, batch: int, num_keys: int, name: str) -> torch.Tensor | None:
    """The `(batch, keys)` keep-mask made by `las_attention_mask`, or `None` (nothing padded)."""
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != (batch, num_keys):
        shape = tuple(attention_mask.shape) if hasattr(attention_mask, "shape") else type(attention_mask).__name__
        raise ValueError(
            f"attn_implementation={name!r} got an attention mask of shape {shape}; it needs the (batch, keys) = "
            f"{(batch, num_keys)} padding mask that its own mask function builds. This model (or the caller) made "
            "its own mask (e.g. a custom 4-D mask), which LaS cannot honour: pass a 2-D `attention_mask` of "
            "1 = token, 0 = padding."
        )
    return attention_mask.bool()


def _check_positions(position_ids: torch.Tensor | None, keep: torch.Tensor | None, name: str) -> None:
    """LaS's decay and smoothing count distances in tokens: the real tokens of a call must have consecutive positions.

    Left padding is fine (positions start after it); packed sequences (positions restarting inside a row) and gaps
    are refused, since distances inside the row would then not be distances between positions.
    """
    if position_ids is None or position_ids.ndim != 2 or position_ids.shape[-1] < 2:
        return  # nothing to compare (multimodal rotary positions, 3-D, are not token distances either way)
    length = position_ids.shape[-1]
    offsets = position_ids - torch.arange(length, device=position_ids.device)
    real = keep[:, -length:] if keep is not None else torch.ones_like(offsets, dtype=torch.bool)
    if real.shape[0] != offsets.shape[0]:
        offsets = offsets.expand(real.shape[0], -1)
    big = torch.iinfo(offsets.dtype).max
    highest = offsets.masked_fill(~real, -big).amax(-1)
    lowest = offsets.masked_fill(~real, big).amin(-1)
    if bool(((highest != lowest) & real.any(-1)).any()):
        raise ValueError(
            f"attn_implementation={name!r}: position_ids do not advance by one per token within a row (packed "
            "sequences, or padding inside a sequence). LaS's decay and smoothing measure distances in tokens along "
            "the row, so they cannot follow these positions: give one sequence per row, padded on the left or right."
        )


def _las_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    *,
    name: str,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """LaS attention as a transformers attention function: `(batch, heads, length, head_dim)` in, `(batch, length,
    heads, head_dim)` out, plus the attention matrix when `output_attentions` is asked."""
    _refuse_unsupported(kwargs, name)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if getattr(module.config, "is_causal", True) is False:  # a decoder made bidirectional by its config
        causal = False
    batch, heads, new, head_dim = query.shape
    total = key.shape[2]
    settings = las_settings(module.config, heads, causal, chunked=name == "las_chunk")
    if heads % key.shape[1] != 0:
        raise ValueError(f"attn_implementation={name!r}: {heads} query heads but {key.shape[1]} key/value heads.")
    # Grouped-query attention: every query head attends to its group's key/value head.
    key, value = repeat_kv(key, heads // key.shape[1]), repeat_kv(value, heads // value.shape[1])
    if scaling is not None and scaling != head_dim**-0.5:
        # The kernels scale scores by 1/sqrt(head_dim); the model's own scale is honoured through the query (the decay
        # multiplies the scaled score, so the result is the same).
        query = query * (scaling * math.sqrt(head_dim))
    keep = _key_padding(attention_mask, batch, total, name)
    _check_positions(kwargs.get("position_ids"), keep, name)
    alphas = torch.tensor(settings.alphas, dtype=torch.float64, device=query.device)
    want_weights = bool(kwargs.get("output_attentions", False))
    options = dict(implementation=settings.kernel, return_attention_weights=want_weights)
    if new == total:
        result = las_attention(
            query,
            key,
            value,
            alphas,
            settings.pool_size,
            settings.pool_mode,
            causal,
            keep,
            settings.chunk_size,
            dropout,
            **options,
        )
    elif causal and new < total:
        # A decoding step: queries are the last `new` positions; the cache holds the raw values of every position, so
        # the causal smoothing is recomputed from them (the same numbers as in a full forward).
        smoothed, _ = las_smooth_new_values(value, None, settings.pool_size, keep, settings.chunk_size)
        result = las_attention_step(
            query, key, smoothed, alphas, settings.pool_size, keep, settings.chunk_size, dropout, **options
        )
    else:
        raise ValueError(
            f"attn_implementation={name!r}: {new} queries against {total} keys in a "
            f"{'causal' if causal else 'bidirectional'} attention (cross-attention?). LaS measures distances between "
            "positions of one sequence: it applies to self-attention only."
        )
    output, weights = result if want_weights else (result, None)
    return output.transpose(1, 2).contiguous(), weights


def las_attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw):
    """The function registered as `attn_implementation="las"` (see the module docstring)."""
    return _las_attention_forward(
        module, query, key, value, attention_mask, dropout, scaling, is_causal, name="las", **kw
    )


def las_chunk_attention_forward(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kw
):
    """The function registered as `attn_implementation="las_chunk"`: LaS inside chunks of `las_chunk_size`."""
    return _las_attention_forward(
        module, query, key, value, attention_mask, dropout, scaling, is_causal, name="las_chunk", **kw
    )


# ---------------------------------------------------------------------------------------------------------------------
# The mask function
# ---------------------------------------------------------------------------------------------------------------------

# Rows of the mask pattern evaluated at a time when a model asks for a pattern other than plain causal/bidirectional.
_PATTERN_ROWS = 256


def _pattern_is_plain(
    mask_function: Callable, batch_size: int, q_length: int, kv_length: int, q_offset: int, device: torch.device
) -> bool:
    """Whether `mask_function` allows exactly what a plain causal or a plain bidirectional mask allows.

    Evaluated over blocks of query rows (memory O(rows x keys)) only where a model composes its own pattern: a sliding
    window (Mistral, Qwen2, ModernBERT), packed sequences, block overlays.
    """
    batch = torch.arange(batch_size, device=device)[:, None, None, None]
    head = torch.zeros(1, 1, 1, 1, dtype=torch.long, device=device)
    keys = torch.arange(kv_length, device=device)[None, None, None, :]
    causal = bidirectional = True
    for start in range(0, q_length, _PATTERN_ROWS):
        queries = torch.arange(start, min(start + _PATTERN_ROWS, q_length), device=device) + q_offset
        queries = queries[None, None, :, None]
        allowed = torch.as_tensor(mask_function(batch, head, queries, keys), device=device)
        allowed = allowed.expand(batch_size, 1, queries.shape[2], kv_length)
        causal = causal and bool((allowed == (keys <= queries)).all())
        bidirectional = bidirectional and bool(allowed.all())
        if not (causal or bidirectional):
            return False
    return True


def las_attention_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    mask_function: Callable = causal_mask_function,
    attention_mask: torch.Tensor | None = None,
    use_vmap: bool = False,
    device: torch.device | str = "cpu",
    config: PreTrainedConfig | None = None,
    **kwargs: Any,
) -> torch.Tensor | None:
    """The mask LaS attention takes: the `(batch, keys)` keep-mask of padding (1 = token), or `None` (no padding).

    LaS handles causality and padding itself (a padded value must also be left out of the smoothing, which a 4-D mask
    cannot say), so it needs only which keys are real. Anything else a model asks of its mask is refused with the
    reason unless it changes nothing: a sliding window at least as long as the sequence is honoured exactly; a shorter
    one, packed sequences, custom overlays, or a cache that dropped or pre-allocated positions are errors.
    """
    name = getattr(config, "_attn_implementation", None) or "las"
    q_offset, kv_offset = int(q_offset), int(kv_offset)
    if kv_offset != 0 or q_offset + q_length != kv_length:
        raise ValueError(
            f"attn_implementation={name!r}: the keys are positions {kv_offset} .. {kv_offset + kv_length - 1} and "
            f"the queries {q_offset} .. {q_offset + q_length - 1}. LaS needs the keys of exactly the positions seen "
            "so far, as transformers' DynamicCache holds them for full-attention layers: a sliding-window cache that "
            "dropped past keys, a StaticCache with pre-allocated slots, or cross-attention are not supported."
        )
    if use_vmap:
        raise ValueError(
            f"attn_implementation={name!r}: this model overlays its own mask pattern (or_mask_function / "
            "and_mask_function, e.g. bidirectional image tokens), which LaS attention does not implement."
        )
    if mask_function not in (causal_mask_function, bidirectional_mask_function) and not _pattern_is_plain(
        mask_function, batch_size, q_length, kv_length, q_offset, torch.device(device)
    ):
        raise ValueError(
            f"attn_implementation={name!r}: this model asks for an attention pattern other than causal or "
            "bidirectional: a sliding window shorter than the sequence (Mistral/Qwen2 `sliding_window`, ModernBERT "
            "`local_attention`), packed sequences (position_ids restarting in a row), or block overlays. LaS "
            "attention does not implement it; give sequences no longer than the window, or set the window to None."
        )
    padding = prepare_padding_mask(attention_mask, kv_length, kv_offset)
    if padding is None:
        return None
    padding = padding[:, :kv_length].to(device=device, dtype=torch.bool)
    return None if bool(padding.all()) else padding


# ---------------------------------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------------------------------


def _check_model_supports_las(model: PreTrainedModel, name: str) -> None:
    """Where a model selects LaS: refuse it if its attention bypasses the interface, and check its LaS settings."""
    if not type(model).is_backend_compatible():
        raise ValueError(
            f"{type(model).__name__} does not route its attention through transformers' AttentionInterface "
            f"(`_supports_attention_backend` is False), so attn_implementation={name!r} would silently run its own "
            "attention. LaS works with models that call `ALL_ATTENTION_FUNCTIONS.get_interface` (Llama, Qwen2, "
            "Mistral, GPT-NeoX, Phi, BERT, ModernBERT, ...); LaSModel has LaS built in."
        )
    heads = getattr(model.config, "num_attention_heads", None)
    las_settings(model.config, heads if isinstance(heads, int) else None, None, chunked=name == "las_chunk")


def _with_las_check(original: Callable, before: bool) -> Callable:
    """`PreTrainedModel.get_correct_attn_implementation` (`before=False`: checks the name it resolves) or
    `set_attn_implementation` (`before=True`: checks the requested name, since for a model that cannot switch it only
    logs a warning), with `_check_model_supports_las` where the name is LaS's."""

    @functools.wraps(original)
    def wrapper(self, requested, *args, **kwargs):
        name = requested.get("", None) if isinstance(requested, dict) else requested
        if before and name in LAS_ATTENTION_NAMES:
            _check_model_supports_las(self, name)
        result = original(self, requested, *args, **kwargs)
        if not before and result in LAS_ATTENTION_NAMES:
            _check_model_supports_las(self, result)
        return result

    wrapper._las_check = True
    return wrapper


def _with_las_fields(original: Callable) -> Callable:
    """`PreTrainedModel._from_config` (what `AutoModel*.from_config` calls) that moves LaS keyword arguments onto the
    config, as `from_pretrained` does, instead of passing them to the model's constructor (a TypeError there)."""

    @functools.wraps(original)
    def wrapper(cls, config, **kwargs):
        for field in LAS_CONFIG_FIELDS:
            if field in kwargs:
                # Set as transformers sets `attn_implementation` there: on the config given; checked with the model.
                setattr(config, field, kwargs.pop(field))
        return original(cls, config, **kwargs)

    wrapper._las_check = True
    return wrapper


def register() -> None:
    """Make `attn_implementation="las"` and `"las_chunk"` valid for every model that uses the AttentionInterface.

    Idempotent. It registers `las_attention_forward` / `las_chunk_attention_forward` with `AttentionInterface` and
    `las_attention_mask` with `AttentionMaskInterface` under both names, and adds two things that act only where a
    model selects one of these names:

    - a check when a model is built or switched to LaS (`from_config`, `from_pretrained`, `set_attn_implementation`)
      that refuses a model whose attention does not go through the interface, and bad LaS settings. transformers has
      no hook for this: `PreTrainedModel.get_correct_attn_implementation` and `set_attn_implementation` are wrapped
      (once), and pass every other name through unchanged;
    - the LaS fields declared on `PreTrainedConfig` (class attributes, default `None`, not saved unless set), so that
      `from_pretrained(..., las_pool_size=3)` sets the field on the config instead of passing it to the model's
      constructor; `PreTrainedModel._from_config` is wrapped (once) to do the same for `from_config(...,
      las_pool_size=3)`.

    Other implementations ("sdpa", "eager", ...) behave exactly as before.
    """
    AttentionInterface.register("las", las_attention_forward)
    AttentionInterface.register("las_chunk", las_chunk_attention_forward)
    for name in LAS_ATTENTION_NAMES:
        AttentionMaskInterface.register(name, las_attention_mask)
    for field in LAS_CONFIG_FIELDS:
        if not hasattr(PreTrainedConfig, field):
            setattr(PreTrainedConfig, field, None)
    for method, before in (("get_correct_attn_implementation", False), ("set_attn_implementation", True)):
        current = getattr(PreTrainedModel, method)
        if not getattr(current, "_las_check", False):
            setattr(PreTrainedModel, method, _with_las_check(current, before))
    from_config = PreTrainedModel.__dict__["_from_config"].__func__
    if not getattr(from_config, "_las_check", False):
        PreTrainedModel._from_config = classmethod(_with_las_fields(from_config))


__all__ = [
    "LAS_ATTENTION_NAMES",
    "LAS_CONFIG_FIELDS",
    "LaSSettings",
    "las_attention_forward",
    "las_attention_mask",
    "las_chunk_attention_forward",
    "las_settings",
    "register",
]
