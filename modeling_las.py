# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""PyTorch LaS (Local and Smooth attention) transformer.

LaS attention (Zimerman & Wolf, ICML 2024), for one head c with decay rate alpha_c and smoothing window P:

    LaS_c(Q, K, V) = AP( softmax( exp(-alpha_c * |i - j|) * Q K^T / sqrt(d) + M ) ) V

where M is the (causal and padding) mask and AP is a 1-D average pooling over every row of the attention matrix.
The math lives in `las_attention.py` (one function, `las_attention`, for every backend); this file holds the modules.

`save_pretrained` copies this file and its three relatively imported siblings (`configuration_las.py`,
`las_attention.py`, `image_processing_las.py`) beside the checkpoint, so that it loads with `trust_remote_code=True`
where this package is not installed. A text or language model needs torch, transformers and safetensors only:
`image_processing_las.py` imports Pillow only when it is given an image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast, SequenceClassifierOutput
from transformers.modeling_utils import AttentionInterface, PreTrainedModel, slice_logits_to_keep
from transformers.utils import logging
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple

# Our sibling modules, imported relatively inside a package (the installed checkout, or Hub remote code under
# `transformers_modules.*`, which finds them by these relative imports) and absolutely where this file is a top-level
# module (`import modeling_las` from a checkout or an installed wheel). Only the one failure the fallback exists for is
# caught: a relative import without a parent package. Any other ImportError (a sibling that fails to import, a missing
# dependency) is raised as it is, so that its own message reaches the user.
try:
    from .configuration_las import LaSConfig
    from .image_processing_las import LaSImageClassificationPipeline, LaSImageProcessor
    from .las_attention import (
        LAS_IMPLEMENTATIONS,
        las_attention,
        las_attention_reference,
        las_attention_step,
        las_flex_block_mask,
        las_smooth_new_values,
    )
except ImportError:
    if __package__:
        raise
    from configuration_las import LaSConfig
    from image_processing_las import LaSImageClassificationPipeline, LaSImageProcessor
    from las_attention import (
        LAS_IMPLEMENTATIONS,
        las_attention,
        las_attention_reference,
        las_attention_step,
        las_flex_block_mask,
        las_smooth_new_values,
    )

logger = logging.get_logger(__name__)

LAS_AUTO_MAP = {
    "AutoConfig": "configuration_las.LaSConfig",
    "AutoModel": "modeling_las.LaSModel",
    "AutoModelForSequenceClassification": "modeling_las.LaSForSequenceClassification",
    "AutoModelForCausalLM": "modeling_las.LaSForCausalLM",
}
# Only checkpoints of pixel models (`input_type="pixels"`) are image classifiers.
LAS_PIXEL_AUTO_MAP = {"AutoModelForImageClassification": "modeling_las.LaSForImageClassification"}


# ---------------------------------------------------------------------------------------------------------------------
# Backends, selected the transformers way (`attn_implementation=`)
# ---------------------------------------------------------------------------------------------------------------------


def las_attention_forward(
    module: LaSAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    output_attentions: bool = False,
    block_mask=None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every backend: `las_attention` with the kernel named by `config._attn_implementation` (eager, sdpa, flex).

    Returns the output as `(batch, length, heads, head_dim)` and, with `output_attentions`, the LaS matrices.
    """
    result = las_attention(
        query,
        key,
        value,
        module.alphas,
        pool_size=module.pool_size,
        pool_mode=module.pool_mode,
        is_causal=module.is_causal,
        attention_mask=attention_mask,
        chunk_size=module.chunk_size,
        dropout=dropout,
        implementation=module.config._attn_implementation,
        query_block_size=module.query_block_size,
        block_mask=block_mask,
        return_attention_weights=output_attentions,
        position_bias=module.position_bias,
        max_alpha=module.max_alpha,
    )
    output, weights = result if output_attentions else (result, None)
    return output.transpose(1, 2), weights


# The LaS backends, a module-local registry: transformers' global sdpa/flex functions do not know the LaS decay and
# must never be used for this model. "eager" is the default of `get_interface`.
LAS_ATTENTION_FUNCTIONS = AttentionInterface()
LAS_ATTENTION_FUNCTIONS["sdpa"] = las_attention_forward
LAS_ATTENTION_FUNCTIONS["flex_attention"] = las_attention_forward


# ---------------------------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------------------------


def sinusoidal_position_table(num_positions: int, dim: int) -> torch.Tensor:
    """The fixed sin/cos position table of "Attention Is All You Need", `(num_positions, dim)`."""
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class LaSEmbeddings(nn.Module):
    """Token embedding (or a linear projection of one pixel per position) plus optional positions."""

    def __init__(self, config: LaSConfig):
        super().__init__()
        self.config = config
        if config.input_type == "tokens":
            self.token_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        else:
            self.pixel_projection = nn.Linear(1, config.hidden_size)
        if config.position_embedding_type == "learned":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        elif config.position_embedding_type == "sinusoidal":
            self.register_buffer(
                "sinusoidal_table",
                sinusoidal_position_table(config.max_position_embeddings, config.hidden_size),
                persistent=False,
            )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`position_ids` (`(batch or 1, length)`): the position of every input (default 0 .. length-1)."""
        if inputs_embeds is None:
            if self.config.input_type == "tokens":
                inputs_embeds = self.token_embeddings(input_ids)
            else:
                inputs_embeds = self.pixel_projection(pixel_values.to(self.pixel_projection.weight.dtype)[..., None])
        length = inputs_embeds.shape[1]
        if self.config.position_embedding_type == "learned":
            table = self.position_embeddings.weight
        elif self.config.position_embedding_type == "sinusoidal":
            table = self.sinusoidal_table.to(inputs_embeds.dtype)
        else:
            return self.dropout(inputs_embeds)
        positions = table[:length] if position_ids is None else table[position_ids]
        return self.dropout(inputs_embeds + positions)


class LaSNorm(nn.Module):
    """LayerNorm over channels, or BatchNorm over channels (statistics over batch and positions, as in S4's repo)."""

    def __init__(self, config: LaSConfig):
        super().__init__()
        self.norm_type = config.norm_type
        if config.norm_type == "layernorm":
            self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        else:
            self.norm = nn.BatchNorm1d(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.norm_type == "layernorm":
            return self.norm(hidden_states)
        return self.norm(hidden_states.transpose(1, 2)).transpose(1, 2)


class LaSAttention(nn.Module):
    """Multi-head LaS attention: projections, then the selected backend, then the output projection."""

    def __init__(self, config: LaSConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.pool_size = config.effective_pool_size
        self.pool_mode = config.las_pool_mode
        self.chunk_size = config.effective_chunk_size
        self.is_causal = config.is_causal
        self.position_bias = config.position_bias  # "decay" (LaS) or "alibi": how `alphas` enter the scores
        self.query_block_size = config.attention_query_block_size
        self.attention_dropout = config.attention_dropout
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)
        # Fixed, not learned ("no additional trainable parameters"); rebuilt from the config in `_init_weights`.
        self.register_buffer("alphas", torch.tensor(config.head_alphas, dtype=torch.float32), persistent=False)
        # Known from the config: the sdpa kernel's block size follows from it without reading the buffer (a host sync
        # and a data-dependent guard that would break `torch.compile(fullgraph=True)` and `torch.export`).
        self.max_alpha = max(config.head_alphas)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        block_mask=None,
        cache: Cache | None = None,
        past_length: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """With a `cache` (holding `past_length` positions), `hidden_states` are the next positions and
        `attention_mask` covers all `past_length + length` of them."""
        batch, length, _ = hidden_states.shape
        heads_shape = (batch, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(heads_shape).transpose(1, 2)  # (batch, heads, length, head_dim)
        key = self.k_proj(hidden_states).view(heads_shape).transpose(1, 2)  # (batch, heads, length, head_dim)
        value = self.v_proj(hidden_states).view(heads_shape).transpose(1, 2)  # (batch, heads, length, head_dim)

        dropout = self.attention_dropout if self.training else 0.0
        if cache is not None:
            cached_keys, cached_values = self._update_cache(cache, key, value, attention_mask, past_length)
        if cache is not None and past_length > 0:
            output, weights = self._attend_after_cache(
                query, cached_keys, cached_values, attention_mask, dropout, output_attentions
            )
        else:
            attention_interface: Callable = LAS_ATTENTION_FUNCTIONS.get_interface(
                self.config._attn_implementation, las_attention_forward
            )
            output, weights = attention_interface(
                self,
                query,
                key,
                value,
                attention_mask,
                dropout=dropout,
                output_attentions=output_attentions,
                block_mask=block_mask,
            )
        output = output.reshape(batch, length, -1)  # (batch, length, heads * head_dim)
        return self.o_proj(output), weights

    def _update_cache(
        self,
        cache: Cache,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        past_length: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new keys and values to the cache; return all keys and all *smoothed* values.

        The cache holds smoothed values: a past position's smoothed value never changes under the causal window. The
        next step's smoothed values also need the raw values of the last P-1 positions; they live in the same cache
        tensor, as a second half of the value's last axis (`[smoothed | raw]`, only when P > 1). That doubles the value
        memory but keeps one tensor per layer, so that every `Cache` operation (beam-search reordering, cropping,
        batch selection, offloading) keeps the raw window consistent with the rest without a Cache subclass.
        """
        pool_size = self.pool_size
        previous_raw = None
        if past_length > 0 and pool_size > 1:
            previous_raw = cache.layers[self.layer_idx].values[..., -(pool_size - 1) :, self.head_dim :]
        smoothed, raw = las_smooth_new_values(value, previous_raw, pool_size, attention_mask, self.chunk_size)
        stored = torch.cat([smoothed, raw], dim=-1) if pool_size > 1 else smoothed
        keys, values = cache.update(key, stored, self.layer_idx)
        return keys, values[..., : self.head_dim]

    def _attend_after_cache(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        smoothed_values: torch.Tensor,
        attention_mask: torch.Tensor | None,
        dropout: float,
        output_attentions: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A decoding step: the new queries attend to every cached and new key (decay on absolute distances)."""
        result = las_attention_step(
            query,
            keys,
            smoothed_values,
            self.alphas,
            pool_size=self.pool_size,
            attention_mask=attention_mask,
            chunk_size=self.chunk_size,
            dropout=dropout,
            implementation=self.config._attn_implementation,
            query_block_size=self.query_block_size,
            return_attention_weights=output_attentions,
            position_bias=self.position_bias,
            max_alpha=self.max_alpha,
        )
        output, weights = result if output_attentions else (result, None)
        return output.transpose(1, 2), weights


class LaSMLP(nn.Module):
    def __init__(self, config: LaSConfig):
        super().__init__()
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act_fn = ACT2FN[config.hidden_act]
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.dropout(self.act_fn(self.up_proj(hidden_states))))


class LaSLayer(GradientCheckpointingLayer):
    """Attention and feed-forward blocks, each a residual branch with pre- or post-normalisation."""

    def __init__(self, config: LaSConfig, layer_idx: int):
        super().__init__()
        self.prenorm = config.prenorm
        self.attention = LaSAttention(config, layer_idx)
        self.attention_norm = LaSNorm(config)
        self.mlp = LaSMLP(config)
        self.mlp_norm = LaSNorm(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        block_mask=None,
        cache: Cache | None = None,
        past_length: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Pre-norm: x + f(norm(x)). Post-norm (the original transformer): norm(x + f(x)).
        residual = hidden_states
        if self.prenorm:
            hidden_states = self.attention_norm(hidden_states)
        hidden_states, weights = self.attention(
            hidden_states,
            attention_mask,
            output_attentions=output_attentions,
            block_mask=block_mask,
            cache=cache,
            past_length=past_length,
        )
        hidden_states = residual + self.dropout(hidden_states)
        if not self.prenorm:
            hidden_states = self.attention_norm(hidden_states)

        residual = hidden_states
        if self.prenorm:
            hidden_states = self.mlp_norm(hidden_states)
        hidden_states = residual + self.dropout(self.mlp(hidden_states))
        if not self.prenorm:
            hidden_states = self.mlp_norm(hidden_states)
        return hidden_states, weights


class LaSPreTrainedModel(PreTrainedModel):
    config_class = LaSConfig
    config: LaSConfig
    base_model_prefix = "las"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LaSLayer"]
    # "sdpa" (the default) and "flex_attention" select our own LaS kernels through LAS_ATTENTION_FUNCTIONS, never the
    # library's generic ones (which would silently drop the decay). No flash-attn package kernel knows the decay.
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = True
    # Trainer averages the loss over gradient-accumulation steps itself and passes no `num_items_in_batch` (with this
    # flag set it would assume the model does, and scale the loss of a DDP run by the world size). `LaSForCausalLM`
    # takes `num_items_in_batch` all the same, for callers that pass it on purpose.
    accepts_loss_kwargs = False

    def __init__(self, config: LaSConfig, *inputs, **kwargs):
        # Fields assigned one by one after the config was built are checked together here, before any layer is built:
        # a bad combination is a named ValueError, not a reshape error in the first forward.
        config.validate_las()
        super().__init__(config, *inputs, **kwargs)
        if config.input_type == "pixels":
            # What Trainer and pipelines read to find the model's main input.
            self.main_input_name = "pixel_values"

    def _check_and_adjust_attn_implementation(
        self, attn_implementation: str | None, is_init_check: bool = False, allow_all_kernels: bool = False
    ) -> str:
        # transformers accepts every name of its global registry ("paged|eager", "flash_attention_2", hub kernels such
        # as "kernels-community/..."); none of those knows the LaS decay, and a model loaded with one would only fail
        # (or silently compute softmax attention) at its first forward. Refuse them when the model is built.
        if attn_implementation is not None and attn_implementation not in LAS_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation={attn_implementation!r} is not supported by LaS models: use one of "
                f"{', '.join(map(repr, LAS_IMPLEMENTATIONS))} (only these have LaS kernels)."
            )
        return super()._check_and_adjust_attn_implementation(attn_implementation, is_init_check, allow_all_kernels)

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # transformers decides whether `set_attn_implementation()` may switch backends by searching the module source
        # for the global registry's name; ours is module-local (LAS_ATTENTION_FUNCTIONS) and is read at every call.
        return True

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers records `auto_map` only for the class being saved; a LaS checkpoint should load as remote code
        # through every Auto class that applies to it, whichever class saved it.
        auto_map = {**LAS_AUTO_MAP, **(LAS_PIXEL_AUTO_MAP if self.config.input_type == "pixels" else {})}
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **auto_map}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm1d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, LaSAttention):
            # Non-persistent buffers are not in the checkpoint; models are built on the meta device, so recreate them.
            init.copy_(module.alphas, torch.tensor(self.config.head_alphas, dtype=torch.float32))
        elif isinstance(module, LaSEmbeddings):
            # Inputs start on the scale of the unit-amplitude sinusoidal table, as with torch's default initialisation
            # in the S4 repository's LRA encoders. With the usual std of 0.02 a token would be a 2% perturbation of its
            # position vector, and long-range tasks then sit on a loss plateau for hundreds of steps.
            if hasattr(module, "token_embeddings"):
                init.normal_(module.token_embeddings.weight, mean=0.0, std=1.0)
            else:
                init.normal_(module.pixel_projection.weight, mean=0.0, std=1.0)
            if hasattr(module, "sinusoidal_table"):
                init.copy_(
                    module.sinusoidal_table,
                    sinusoidal_position_table(self.config.max_position_embeddings, self.config.hidden_size),
                )


def _check_model_inputs(
    config: LaSConfig,
    input_ids: torch.Tensor | None,
    pixel_values: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    past_length: int = 0,
) -> tuple[int, ...]:
    """Validate what the user passed and return the shape of the sequence axes (batch[, 2], length).

    After a cache of `past_length` positions, `attention_mask` covers the cached and the new positions.
    """
    given = {
        name: t
        for name, t in (("input_ids", input_ids), ("pixel_values", pixel_values), ("inputs_embeds", inputs_embeds))
        if t is not None
    }
    if len(given) != 1:
        expected = "input_ids" if config.input_type == "tokens" else "pixel_values"
        raise ValueError(f"Pass exactly one of {expected} or inputs_embeds; got {sorted(given) or 'none'}.")
    name, tensor = next(iter(given.items()))
    if name == "input_ids" and config.input_type != "tokens":
        raise ValueError(
            "This model has input_type='pixels': pass pixel_values (one float per position), not input_ids."
        )
    if name == "pixel_values" and config.input_type != "pixels":
        raise ValueError("This model has input_type='tokens': pass input_ids, not pixel_values.")
    sequence_shape = tuple(tensor.shape[:-1] if name == "inputs_embeds" else tensor.shape)
    expected_rank = 3 if config.dual_encoder else 2
    if len(sequence_shape) != expected_rank:
        layout = "(batch, 2, length)" if config.dual_encoder else "(batch, length)"
        raise ValueError(
            f"{name} must be shaped {layout}{' + (hidden_size,)' if name == 'inputs_embeds' else ''}; "
            f"got {tuple(tensor.shape)}."
        )
    if config.dual_encoder and sequence_shape[1] != 2:
        raise ValueError(
            f"A dual encoder takes two documents per example: {name} shaped (batch, 2, length); "
            f"got {tuple(tensor.shape)}."
        )
    mask_shape = (*sequence_shape[:-1], past_length + sequence_shape[-1])
    if attention_mask is not None and tuple(attention_mask.shape) != mask_shape:
        after_cache = f" after {past_length} cached positions (it covers cached and new ones)" if past_length else ""
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not match {name} shape {sequence_shape}"
            f"{after_cache}: expected {mask_shape}."
        )
    length = past_length + sequence_shape[-1]
    if config.position_embedding_type != "none" and length > config.max_position_embeddings:
        raise ValueError(
            f"Sequence length {length} exceeds max_position_embeddings={config.max_position_embeddings}; "
            "truncate the input or build the model with a larger max_position_embeddings."
        )
    if name == "input_ids" and not torch.compiler.is_compiling() and input_ids.numel() > 0:
        # An out-of-range id would otherwise be a device-side assert on CUDA (which poisons the process): one fused
        # reduction and one host sync per forward buys a clear error.
        low, high = torch.stack(torch.aminmax(input_ids)).tolist()
        if low < 0 or high >= config.vocab_size:
            raise ValueError(
                f"input_ids must lie in [0, vocab_size={config.vocab_size}); found values in [{low}, {high}]."
            )
    if name == "pixel_values" and not torch.compiler.is_compiling() and pixel_values.is_floating_point():
        # A NaN or inf pixel would turn every logit and the loss into NaN without a word: one reduction, one sync.
        if not bool(torch.isfinite(pixel_values).all()):
            raise ValueError("pixel_values contain NaN or infinite values; check the image decoding / normalisation.")
    return sequence_shape


def _check_cache_position(cache_position: torch.Tensor, past_length: int, length: int) -> None:
    """`cache_position` must be what the cache implies: `past_length .. past_length + length - 1`."""
    if tuple(cache_position.shape) != (length,):
        raise ValueError(
            f"cache_position must be shaped ({length},), one per new position; got {tuple(cache_position.shape)}."
        )
    if torch.compiler.is_compiling() or length == 0:
        return
    first, last = cache_position[[0, -1]].tolist()
    if (first, last) != (past_length, past_length + length - 1):
        raise ValueError(
            f"cache_position runs from {first} to {last}, but the cache holds {past_length} positions: the new ones "
            f"are {past_length} .. {past_length + length - 1}. LaS models place new tokens after the cached ones."
        )


class LaSModel(LaSPreTrainedModel):
    """The bare LaS encoder: embeddings, `num_hidden_layers` LaS layers, and a final norm for pre-norm models."""

    def __init__(self, config: LaSConfig):
        super().__init__(config)
        self.embeddings = LaSEmbeddings(config)
        self.layers = nn.ModuleList([LaSLayer(config, i) for i in range(config.num_hidden_layers)])
        self.final_norm = LaSNorm(config) if config.prenorm else nn.Identity()
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module | None:
        return getattr(self.embeddings, "token_embeddings", None)

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings.token_embeddings = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        cache_position: torch.Tensor | None = None,
    ) -> BaseModelOutputWithPast:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, length)`, or `(batch, 2, length)` for a dual encoder):
            Token ids (`input_type="tokens"`).
        attention_mask (same shape as the inputs): 1 for real positions, 0 for padding (left or right padding). After a
            `cache`, it covers the cached and the new positions, `(batch, cached + length)`.
        pixel_values (`torch.FloatTensor` of shape `(batch, length)` or `(batch, 2, length)`):
            One value per position (`input_type="pixels"`), e.g. grayscale pixels scaled to [0, 1].
        inputs_embeds (`torch.FloatTensor` of shape `(..., length, hidden_size)`): precomputed input vectors.
        position_ids (same shape as the inputs): positions for the position embeddings. Default: counted over the real
            positions of `attention_mask` (so a left-padded sequence gets the positions it has alone), else 0, 1, ...
            after the cached positions.
        cache (`DynamicCache`), use_cache: a KV cache for incremental decoding (causal models with
            `las_pool_mode="causal"` only); `use_cache=True` without a cache starts one. Returned as `cache`.
        cache_position (`torch.LongTensor` of shape `(length,)`): the positions of the inputs in the cache, as
            `generate` passes them. They follow from the cache itself (`cached .. cached + length - 1`), so they are
            only checked against it: a different value is an error, not a silently ignored argument.

        Returns `last_hidden_state` shaped like the inputs plus `hidden_size` (a dual encoder keeps its `2` axis),
        and, when asked, every layer's `hidden_states` and `attentions` (the LaS matrices after smoothing).

        There is no `**kwargs`: a misspelt argument (`attention_masks=`) is a `TypeError` naming it, not a silently
        ignored mask. `return_dict` is handled by the `can_return_tuple` decorator.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if cache is not None:
            self._check_cache(cache)
        past_length = cache.get_seq_length() if cache is not None else 0
        sequence_shape = _check_model_inputs(
            self.config, input_ids, pixel_values, inputs_embeds, attention_mask, past_length
        )
        if cache_position is not None:
            _check_cache_position(cache_position, past_length, sequence_shape[-1])
        flat = lambda t: None if t is None else t.reshape(-1, *t.shape[len(sequence_shape) - 1 :])  # noqa: E731
        input_ids, pixel_values, attention_mask = flat(input_ids), flat(pixel_values), flat(attention_mask)
        inputs_embeds = None if inputs_embeds is None else inputs_embeds.reshape(-1, *inputs_embeds.shape[-2:])
        length = sequence_shape[-1]
        if cache is not None and attention_mask is None:
            # A step needs the mask of every position so far: it places LaS-chunk's chunks.
            attention_mask = torch.ones(
                flat_batch(sequence_shape), past_length + length, dtype=torch.long, device=self.device
            )
        position_ids = self._position_ids(flat(position_ids), attention_mask, past_length, length)

        hidden_states = self.embeddings(input_ids, pixel_values, inputs_embeds, position_ids)
        batch = hidden_states.shape[0]
        block_mask = None
        if self.config._attn_implementation == "flex_attention" and past_length == 0:
            block_mask = las_flex_block_mask(
                attention_mask,
                batch,
                length,
                self.config.is_causal,
                self.config.effective_chunk_size,
                hidden_states.device,
            )

        all_hidden_states, all_attentions = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            hidden_states, weights = layer(
                hidden_states,
                attention_mask=attention_mask,
                output_attentions=output_attentions,
                block_mask=block_mask,
                cache=cache,
                past_length=past_length,
            )
            if output_attentions:
                all_attentions.append(weights)
        hidden_states = self.final_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states.append(hidden_states)

        # A dual encoder gets its (batch, 2, ...) layout back.
        unflat = lambda t: t.reshape(*sequence_shape[:-1], *t.shape[1:])  # noqa: E731
        return BaseModelOutputWithPast(
            last_hidden_state=unflat(hidden_states),
            cache=cache,
            hidden_states=tuple(map(unflat, all_hidden_states)) if output_hidden_states else None,
            attentions=tuple(map(unflat, all_attentions)) if output_attentions else None,
        )

    def _check_cache(self, cache: Cache) -> None:
        """A KV cache needs a causal model whose smoothing window looks only back, stored in a `DynamicCache`."""
        config = self.config
        if not config.is_causal or config.dual_encoder:
            raise ValueError(
                "A KV cache needs a causal model (is_causal=True, dual_encoder=False): a bidirectional model's past "
                "positions change with every new token."
            )
        if config.effective_pool_size > 1 and config.las_pool_mode != "causal":
            raise ValueError(
                f"A KV cache needs las_pool_mode='causal' (got {config.las_pool_mode!r} with las_pool_size="
                f"{config.las_pool_size}): the symmetric window smooths every value with the next P//2 positions' "
                "values, which do not exist yet when the position is cached."
            )
        if not isinstance(cache, DynamicCache):
            raise ValueError(
                f"LaS models decode with a DynamicCache (got {type(cache).__name__}): the cache's value tensor also "
                "holds the raw values of the smoothing window, which a fixed-size cache would not keep in order."
            )

    def _position_ids(
        self, position_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, past_length: int, length: int
    ) -> torch.Tensor | None:
        """The given positions (checked), or positions counted over the real tokens of the mask (as `generate`)."""
        if self.config.position_embedding_type == "none":
            return None
        if position_ids is not None:
            if not torch.compiler.is_compiling() and position_ids.numel() > 0:
                low, high = torch.stack(torch.aminmax(position_ids)).tolist()
                if low < 0 or high >= self.config.max_position_embeddings:
                    raise ValueError(
                        "position_ids must lie in [0, max_position_embeddings="
                        f"{self.config.max_position_embeddings}); found values in [{low}, {high}]."
                    )
            return position_ids
        if attention_mask is None:
            if past_length == 0:
                return None
            return torch.arange(past_length, past_length + length, device=self.device)[None]
        # Padding gets position 0 (anything in range: its outputs never reach a real position).
        return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -length:]


def flat_batch(sequence_shape: tuple[int, ...]) -> int:
    """The number of sequences in a `(batch[, 2], length)` input."""
    return math.prod(sequence_shape[:-1])


def pool_sequence(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """Reduce `(..., length, hidden)` to `(..., hidden)`: mean over real positions, first or last real position."""
    if pooling == "first" and attention_mask is None:
        return hidden_states[..., 0, :]
    if attention_mask is None:
        attention_mask = hidden_states.new_ones(hidden_states.shape[:-1])
    keep = attention_mask.to(hidden_states.dtype)
    if pooling == "mean":
        # clamp: a fully padded sequence pools to zeros instead of 0/0 = NaN.
        return (hidden_states * keep[..., None]).sum(-2) / keep.sum(-1, keepdim=True).clamp(min=1)
    positions = torch.arange(keep.shape[-1], device=keep.device)
    if pooling == "first":  # the first real position (left padding)
        index = attention_mask.to(torch.int8).argmax(-1)
    else:
        index = (attention_mask.long() * positions).amax(-1)
    index = index[..., None, None].expand(*index.shape, 1, hidden_states.shape[-1])
    return torch.gather(hidden_states, -2, index).squeeze(-2)


class LaSForSequenceClassification(LaSPreTrainedModel):
    """LaS encoder, pooling and a classifier; with `config.dual_encoder` the two-document LRA Retrieval form."""

    def __init__(self, config: LaSConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.las = LaSModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        if config.dual_encoder:
            # As the LRA Retrieval baseline: an MLP on [u, v, u * v, u - v].
            self.classifier = nn.Sequential(
                nn.Linear(4 * config.hidden_size, config.hidden_size),
                ACT2FN[config.hidden_act],
                nn.Linear(config.hidden_size, config.num_labels),
            )
        else:
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch,)`, or float `(batch, num_labels)` for multi-label / regression):
            Cross-entropy for single-label classification, BCE-with-logits for multi-label, MSE for regression
            (`config.problem_type`, inferred from `num_labels` and the label dtype when unset).
        position_ids: as for `LaSModel` (default: counted over the real positions of `attention_mask`).
        """
        outputs = self.las(
            input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            inputs_embeds=inputs_embeds,
            position_ids=position_ids,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        pooled = pool_sequence(outputs.last_hidden_state, attention_mask, self.config.classifier_pooling)
        if self.config.dual_encoder:
            u, v = pooled[:, 0], pooled[:, 1]
            pooled = torch.cat([u, v, u * v, u - v], dim=-1)
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class LaSForImageClassification(LaSForSequenceClassification):
    """A pixel model (`input_type="pixels"`) as an image classifier: what `AutoModelForImageClassification` and
    `pipeline("image-classification")` load. Same weights and forward as [`LaSForSequenceClassification`]; pair it with
    [`LaSImageProcessor`], which turns images into its `pixel_values`."""

    main_input_name = "pixel_values"

    def __init__(self, config: LaSConfig):
        if config.input_type != "pixels":
            raise ValueError(
                f"LaSForImageClassification needs a pixel model (input_type='pixels'); this config has "
                f"input_type={config.input_type!r}: use LaSForSequenceClassification."
            )
        super().__init__(config)


def check_causal_lm_config(config: LaSConfig) -> None:
    """The rules a LaS language model must follow, each as a one-line `ValueError` that says why."""
    if config.effective_pool_size > 1 and config.las_pool_mode != "causal":
        raise ValueError(
            f"LaSForCausalLM needs las_pool_mode='causal' (got {config.las_pool_mode!r} with las_pool_size="
            f"{config.las_pool_size}): the symmetric window averages every value with the values of the next P//2 "
            "positions, so position t would see the tokens it must predict."
        )
    if not config.is_causal:
        raise ValueError("LaSForCausalLM needs is_causal=True: a bidirectional model sees the tokens it must predict.")
    if config.input_type != "tokens" or config.dual_encoder:
        raise ValueError("LaSForCausalLM models token sequences: it needs input_type='tokens' and dual_encoder=False.")


class LaSForCausalLM(LaSPreTrainedModel, GenerationMixin):
    """LaS decoder with a language-modelling head: next-token logits, shifted cross-entropy, `generate()` with a
    KV cache (`DynamicCache`). Needs `las_pool_mode="causal"` (see `check_causal_lm_config`); the head shares the token
    embedding's weight with `tie_word_embeddings=True`."""

    _tied_weights_keys = {"lm_head.weight": "las.embeddings.token_embeddings.weight"}

    def __init__(self, config: LaSConfig):
        check_causal_lm_config(config)
        super().__init__(config)
        self.las = LaSModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.lm_head = new_embeddings

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        cache_position: torch.Tensor | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> CausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch, length)`): the input ids themselves (shifted inside: position t
            is scored on token t + 1); -100 marks positions without a loss (e.g. padding).
        logits_to_keep: compute logits for the last this many positions only (0: all), as `generate` asks.
        num_items_in_batch: the number of target tokens of the whole (gradient-accumulated) batch, as Trainer passes
            it to models that take it: the loss is then their sum divided by this number.

        The other arguments are `LaSModel`'s. As there, no `**kwargs`: a misspelt argument (`attention_mas=`,
        `label=`) is a `TypeError` naming it, not an unmasked forward or a missing loss.
        """
        outputs = self.las(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            cache_position=cache_position,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits,
                labels=labels,
                vocab_size=self.config.vocab_size,
                num_items_in_batch=num_items_in_batch,
            )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


def register_las_auto_classes() -> None:
    """Register with the Auto classes (config; base, sequence-classification, image-classification and causal-LM
    models; image processor; no video processor), for Hub remote code, and our image-classification pipeline.

    Once this module is imported, a LaS checkpoint loads as local code through every Auto class and through
    `pipeline("image-classification", model=folder)` without `trust_remote_code` and without a remote-code prompt.
    """
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    # The classes themselves: `transformers.AutoImageProcessor` / `AutoVideoProcessor` are placeholders that raise
    # where Pillow / torchvision are missing (a text checkpoint loads without Pillow), while the real ones register.
    from transformers.models.auto.image_processing_auto import AutoImageProcessor
    from transformers.models.auto.video_processing_auto import AutoVideoProcessor

    try:
        AutoConfig.register(LaSConfig.model_type, LaSConfig)
    except ValueError:  # already registered (module imported twice, e.g. as remote code and locally)
        pass
    for auto_class, model_class in (
        (AutoModel, LaSModel),
        (AutoModelForSequenceClassification, LaSForSequenceClassification),
        (AutoModelForImageClassification, LaSForImageClassification),
        (AutoModelForCausalLM, LaSForCausalLM),
    ):
        try:
            auto_class.register(LaSConfig, model_class)
        except ValueError:
            pass
    # Our processor works on numpy and Pillow: the "pil" backend (transformers falls back to it without torchvision).
    AutoImageProcessor.register(LaSConfig, image_processor_classes={"pil": LaSImageProcessor}, exist_ok=True)
    # Every pipeline also tries to load a video processor, and transformers derives its remote-code reference from the
    # image processor's `auto_map`: without a local entry it stops at a y/N remote-code prompt (15 s) before it finds
    # that the class does not exist. An empty entry says "known model, no video processor" (the load fails quietly).
    AutoVideoProcessor.register(LaSConfig, video_processor_classes={}, exist_ok=True)
    _install_image_classification_pipeline()
    LaSConfig.register_for_auto_class()
    LaSModel.register_for_auto_class("AutoModel")
    LaSForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
    LaSForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    LaSImageProcessor.register_for_auto_class("AutoImageProcessor")
    LaSForCausalLM.register_for_auto_class("AutoModelForCausalLM")


def _install_image_classification_pipeline() -> None:
    """Make `pipeline("image-classification")` our subclass, which checks files before decoding them when the image
    processor is a LaS one and behaves exactly as transformers' pipeline for every other model."""
    from transformers.pipelines import PIPELINE_REGISTRY, ImageClassificationPipeline

    task = PIPELINE_REGISTRY.supported_tasks.get("image-classification")
    if task is None:
        return
    implementation = task["impl"]
    name = implementation if isinstance(implementation, str) else implementation.__name__
    stock = implementation is ImageClassificationPipeline or name.endswith(".ImageClassificationPipeline")
    if stock or name == LaSImageClassificationPipeline.__name__:
        # The registry entry is updated in place (not with `register_pipeline`), so that a saved pipeline does not
        # record our class as a custom pipeline of the checkpoint.
        task["impl"] = LaSImageClassificationPipeline
    else:  # another library installed its own: keep it (ours would drop its behaviour)
        logger.warning_once(
            f"pipeline('image-classification') is {name}, not transformers' own: LaS image files are not checked "
            "before decoding there (16-bit and oversized images)."
        )


register_las_auto_classes()

__all__ = [
    "LaSConfig",
    "LaSModel",
    "LaSForSequenceClassification",
    "LaSForImageClassification",
    "LaSImageProcessor",
    "LaSImageClassificationPipeline",
    "LaSForCausalLM",
    "LaSPreTrainedModel",
    "las_attention",
    "las_attention_reference",
    "las_attention_forward",
    "pool_sequence",
]
