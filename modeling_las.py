# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""PyTorch LaS (Local and Smooth attention) transformer.

LaS attention (Zimerman & Wolf, ICML 2024), for one head c with decay rate alpha_c and smoothing window P:

    LaS_c(Q, K, V) = AP( softmax( exp(-alpha_c * |i - j|) * Q K^T / sqrt(d) + M ) ) V

where M is the (causal and padding) mask and AP is a 1-D average pooling over every row of the attention matrix.
Pooling a row is a right-multiplication by a banded matrix P, so AP(A) V = A (P V): smoothing the attention matrix is
exactly smoothing V along the sequence. Everything below computes LaS that way, never materialising more than a block
of the L x L matrix, and one function (`las_attention`) holds the math for every backend.

This file is self-contained on purpose: `save_pretrained` copies it beside the checkpoint so that the checkpoint loads
with `trust_remote_code=True` where this package is not installed. Its only local import is the relative one below.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput
from transformers.modeling_utils import AttentionInterface, PreTrainedModel
from transformers.utils import logging
from transformers.utils.generic import can_return_tuple

try:  # inside a package: the installed checkout's sibling module, or Hub remote code (transformers_modules.*)
    from .configuration_las import LaSConfig
    from .image_processing_las import LaSImageProcessor
except ImportError:  # imported as a top-level module (`import modeling_las` from a checkout or an installed wheel)
    from configuration_las import LaSConfig
    from image_processing_las import LaSImageProcessor

logger = logging.get_logger(__name__)

LAS_IMPLEMENTATIONS = ("eager", "flex")
LAS_AUTO_MAP = {
    "AutoConfig": "configuration_las.LaSConfig",
    "AutoModel": "modeling_las.LaSModel",
    "AutoModelForSequenceClassification": "modeling_las.LaSForSequenceClassification",
}
# Only checkpoints of pixel models (`input_type="pixels"`) are image classifiers.
LAS_PIXEL_AUTO_MAP = {"AutoModelForImageClassification": "modeling_las.LaSForImageClassification"}


# ----------------------------------------------------------------------------------------------------------------------
# The math: one implementation, used by every backend
# ----------------------------------------------------------------------------------------------------------------------


def smooth_along(x: torch.Tensor, dim: int, pool_size: int, left: int) -> torch.Tensor:
    """Average `x` along `dim` over the window `[t - left, t - left + pool_size - 1]` with zero padding.

    The divisor is always `pool_size` (padding counts as zeros), so the operator is a fixed banded matrix and its
    transpose is the same kind of window mirrored: `left -> pool_size - 1 - left`.
    One reduction over a strided window view of the padded tensor (`unfold`), accumulated in at least float32: it
    keeps `x`'s layout, where `avg_pool1d` needs `dim` moved last (a transposed copy in and out, 5x slower on V).
    """
    if pool_size == 1:
        return x
    dims_after = x.ndim - 1 - (dim % x.ndim)
    padded = F.pad(x, (0, 0) * dims_after + (left, pool_size - 1 - left))
    windows = padded.unfold(dim, pool_size, 1)  # (..., length, ..., pool_size), a view
    accumulate = torch.promote_types(x.dtype, torch.float32)
    return windows.sum(-1, dtype=accumulate).div_(pool_size).to(x.dtype)


def attention_row_window_left(pool_size: int, pool_mode: str) -> int:
    """How many keys before key j the smoothing window of row entry j reaches.

    "symmetric": centred window (our reading of the paper). "causal": `A'[i, j] = mean(A[i, j .. j+P-1])`, which
    keeps weight off keys after the query; on V it is the mean over the past P positions.
    """
    return pool_size // 2 if pool_mode == "symmetric" else 0


def _check_las_arguments(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    pool_size: int,
    pool_mode: str,
    attention_mask: torch.Tensor | None,
    chunk_size: int | None,
    implementation: str,
) -> None:
    if query.dim() != 4 or key.shape != query.shape or value.shape[:-1] != query.shape[:-1]:
        raise ValueError(
            "las_attention expects query, key and value shaped (batch, heads, length, head_dim) with matching "
            f"batch/heads/length; got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}."
        )
    if alphas.shape != (query.shape[1],):
        raise ValueError(f"alphas must hold one decay rate per head: shape ({query.shape[1]},), got {tuple(alphas.shape)}.")
    if pool_mode not in ("symmetric", "causal"):
        raise ValueError(f"pool_mode={pool_mode!r} is not one of 'symmetric', 'causal'.")
    if pool_size < 1 or (pool_mode == "symmetric" and pool_size % 2 == 0):
        raise ValueError(f"pool_size={pool_size} must be >= 1 (and odd for the symmetric window).")
    if attention_mask is not None and attention_mask.shape != (query.shape[0], query.shape[2]):
        raise ValueError(
            f"attention_mask must be shaped (batch, length) = {(query.shape[0], query.shape[2])} with 1 = keep and "
            f"0 = padding; got {tuple(attention_mask.shape)}."
        )
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be >= 1.")
    if implementation not in LAS_IMPLEMENTATIONS:
        raise ValueError(f"implementation={implementation!r} is not one of {LAS_IMPLEMENTATIONS}.")


def las_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    pool_size: int = 1,
    pool_mode: str = "symmetric",
    is_causal: bool = True,
    attention_mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
    dropout: float = 0.0,
    *,
    implementation: str = "eager",
    query_block_size: int = 512,
    block_mask=None,
    return_attention_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """LaS attention on `(batch, heads, length, head_dim)` tensors; returns `(batch, heads, length, head_dim)`.

    Args:
        query, key, value: the projected inputs of every head.
        alphas: `(heads,)` decay rates; head h multiplies its scaled scores by `exp(-alphas[h] * |i - j|)`.
        pool_size: window P of the row smoothing (1 = none).
        pool_mode: `"symmetric"` (centred window) or `"causal"` (window over keys j .. j+P-1).
        is_causal: mask keys after the query.
        attention_mask: `(batch, length)`, 1 = keep, 0 = padding. Padded positions behave as if they did not exist:
            their keys are masked and their values are zeroed before smoothing (masking keys alone would let the
            smoothing move weight onto a padded value).
        chunk_size: if set, LaS-chunk: LaS applied separately inside non-overlapping chunks of this length.
        dropout: dropout probability on the attention probabilities (pass 0.0 in evaluation).
        implementation: `"eager"` (materialised scores over blocks of `query_block_size` queries: O(block x L)
            memory, also in training thanks to per-block recomputation) or `"flex"` (torch flex_attention with a
            multiplicative score_mod on the smoothed values; never materialises L x L).
        block_mask: an optional precomputed flex `BlockMask` (see `las_flex_block_mask`), to build it once per model
            call instead of once per layer.
        return_attention_weights: also return the LaS attention matrix after smoothing, `(batch, heads, L, L)`,
            with the columns of padded keys zeroed (the weights that actually multiply V).

    `alphas = 0` and `pool_size = 1` is plain softmax attention.
    """
    _check_las_arguments(query, key, value, alphas, pool_size, pool_mode, attention_mask, chunk_size, implementation)
    keep = attention_mask.bool() if attention_mask is not None else None
    batch, heads, length, _ = query.shape

    if chunk_size is not None and chunk_size < length:
        chunk_keep = las_chunk_mask(keep, batch, length, chunk_size, query.device)
        to_chunks = functools.partial(_split_into_chunks, chunk_size=chunk_size)
        result = las_attention(
            to_chunks(query),
            to_chunks(key),
            to_chunks(value),
            alphas,
            pool_size,
            pool_mode,
            is_causal,
            chunk_keep,
            None,
            dropout,
            implementation=implementation,
            query_block_size=query_block_size,
            block_mask=block_mask,
            return_attention_weights=return_attention_weights,
        )
        if not return_attention_weights:
            return _merge_chunks(result, batch, length)
        output, weights = result
        return _merge_chunks(output, batch, length), _block_diagonal(weights, batch, length)

    if keep is not None:
        # A padded value must not be smoothed into a real position's value.
        value = value * keep[:, None, :, None].to(value.dtype)
    row_left = attention_row_window_left(pool_size, pool_mode)
    smoothed_value = smooth_along(value, dim=-2, pool_size=pool_size, left=pool_size - 1 - row_left)

    use_flex = implementation == "flex"
    if use_flex and (return_attention_weights or dropout > 0.0 or _cpu_backward_needed(query, key, value)):
        # flex_attention cannot return the matrix, has no dropout, and has no backward on CPU (torch 2.13).
        logger.warning_once(
            "LaS flex attention falls back to the eager kernel here (attention weights requested, attention dropout, "
            "or a backward pass on CPU, which torch's flex_attention does not support)."
        )
        use_flex = False

    if use_flex:
        output = _flex_las_kernel(query, key, smoothed_value, alphas, is_causal, keep, block_mask)
        probs = None
    else:
        output, probs = _eager_las_kernel(
            query, key, smoothed_value, alphas, is_causal, keep, dropout, query_block_size, return_attention_weights
        )
    if not return_attention_weights:
        return output
    weights = smooth_along(probs, dim=-1, pool_size=pool_size, left=row_left)
    if keep is not None:
        weights = weights * keep[:, None, None, :].to(weights.dtype)
    return output, weights


def las_attention_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    pool_size: int = 1,
    pool_mode: str = "symmetric",
    is_causal: bool = True,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The literal definition, O(L^2) memory: never used by the model.

    Materialise `exp(-alpha |i - j|) * Q K^T / sqrt(d)`, mask, softmax, average-pool every row of the matrix, multiply
    by V (padded values count as zero). It exists to check the fast paths in tests and as the naive baseline in
    benchmarks, and deliberately shares no code with `las_attention`.
    """
    length, head_dim = query.shape[-2], query.shape[-1]
    positions = torch.arange(length, device=query.device)
    distance = (positions[:, None] - positions[None, :]).abs()
    decay = torch.exp(-alphas.to(query.dtype)[:, None, None] * distance)
    scores = decay * (query @ key.transpose(-1, -2)) / math.sqrt(head_dim)
    allowed = torch.ones(length, length, dtype=torch.bool, device=query.device)[None, None]
    if is_causal:
        allowed = allowed & (positions[None, :] <= positions[:, None])
    keep = None
    if attention_mask is not None:
        keep = attention_mask.bool()[:, None, None, :]
        allowed = allowed & keep
    probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
    rows = probs.reshape(-1, 1, length)
    if pool_mode == "symmetric":
        pooled = F.avg_pool1d(rows, pool_size, stride=1, padding=pool_size // 2, count_include_pad=True)
    else:
        pooled = F.avg_pool1d(F.pad(rows, (0, pool_size - 1)), pool_size, stride=1)
    pooled = pooled.reshape(probs.shape)
    if keep is not None:
        pooled = pooled * keep
    return pooled @ value


def _cpu_backward_needed(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad and t.device.type == "cpu" for t in tensors)


# -- LaS-chunk ---------------------------------------------------------------------------------------------------------


def las_chunk_mask(
    keep: torch.Tensor | None, batch: int, length: int, chunk_size: int, device: torch.device
) -> torch.Tensor | None:
    """The `(batch * num_chunks, chunk_size)` keep-mask of a chunked sequence (the tail of the last chunk is padding).

    `None` when nothing is masked (no padding, and the length a multiple of the chunk size): the kernels then skip
    masking altogether.
    """
    tail = math.ceil(length / chunk_size) * chunk_size - length
    if keep is None and tail == 0:
        return None
    if keep is None:
        keep = torch.ones(batch, length, dtype=torch.bool, device=device)
    return F.pad(keep, (0, tail), value=False).reshape(-1, chunk_size)


def _split_into_chunks(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(B, H, L, D) -> (B * n, H, C, D), zero-padding the last chunk."""
    batch, heads, length, dim = x.shape
    num_chunks = math.ceil(length / chunk_size)
    x = F.pad(x, (0, 0, 0, num_chunks * chunk_size - length))
    return x.reshape(batch, heads, num_chunks, chunk_size, dim).transpose(1, 2).reshape(-1, heads, chunk_size, dim)


def _merge_chunks(x: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """(B * n, H, C, D) -> (B, H, L, D): the inverse of `_split_into_chunks`."""
    _, heads, chunk_size, dim = x.shape
    x = x.reshape(batch, -1, heads, chunk_size, dim).transpose(1, 2)
    return x.reshape(batch, heads, -1, dim)[:, :, :length]


def _block_diagonal(weights: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """Chunk attention matrices (B * n, H, C, C) -> the full (B, H, L, L) block-diagonal matrix."""
    _, heads, chunk_size, _ = weights.shape
    weights = weights.reshape(batch, -1, heads, chunk_size, chunk_size)
    num_chunks = weights.shape[1]
    full = weights.new_zeros(batch, heads, num_chunks * chunk_size, num_chunks * chunk_size)
    for c in range(num_chunks):  # only for output_attentions, never in the training path
        span = slice(c * chunk_size, (c + 1) * chunk_size)
        full[:, :, span, span] = weights[:, c]
    return full[:, :, :length, :length]


# -- eager kernel: blocks of queries -----------------------------------------------------------------------------------


def _eager_las_block(
    query_block: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    query_start: int,
    is_causal: bool,
    keep: torch.Tensor | None,
    dropout: float,
    need_probs: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax attention with the LaS decay for queries `query_start .. query_start + block - 1`."""
    block = query_block.shape[-2]
    num_keys = key.shape[-2]
    query_pos = torch.arange(query_start, query_start + block, device=query_block.device)
    key_pos = torch.arange(num_keys, device=query_block.device)
    distance = (query_pos[:, None] - key_pos[None, :]).abs()

    # Decay and softmax run in at least float32, also for half-precision inputs.
    compute_dtype = torch.promote_types(query_block.dtype, torch.float32)
    # The 1/sqrt(d) scale and the decay exp(-alpha_h |i - j|) form one (heads, block, keys) table shared by the batch.
    # The decay multiplies the scores (it is not an additive bias as in ALiBi): distant scores are pulled towards 0.
    decay = torch.exp(-alphas.to(compute_dtype)[:, None, None] * distance) * query_block.shape[-1] ** -0.5
    raw_scores = torch.matmul(query_block, key.transpose(-1, -2)).to(compute_dtype)

    allowed = None
    if is_causal:
        allowed = (key_pos[None, :] <= query_pos[:, None])[None, None]
    if keep is not None:
        key_keep = keep[:, None, None, :num_keys]
        allowed = key_keep if allowed is None else allowed & key_keep
    if allowed is None:
        scores = raw_scores * decay
    else:
        # The mask as an additive bias fused with the decay: one pass over the (batch, heads, block, keys) scores.
        bias = torch.zeros(allowed.shape, dtype=compute_dtype, device=allowed.device)
        scores = torch.addcmul(bias.masked_fill_(~allowed, torch.finfo(compute_dtype).min), raw_scores, decay)
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    if dropout > 0.0:
        probs = F.dropout(probs, p=dropout, training=True)
    output = torch.matmul(probs, value)
    if allowed is not None:
        # A query that sees no key at all (a fully padded row) gets zero output, not an average of masked values.
        row_sees_a_key = allowed.any(dim=-1, keepdim=True)
        output = output * row_sees_a_key
        probs = probs * row_sees_a_key if need_probs else probs
    return output, (probs if need_probs else None)


def _eager_tile_scores(device: torch.device) -> int:
    """The most (batch x heads x queries x keys) scores one eager tile holds.

    Query blocks bound a tile along the sequence; this also splits the batch, which matters for LaS-chunk, whose
    batch is batch x number of chunks (64 chunks for 64K tokens in 1K chunks): time per score must not grow with the
    tile. On CPU 2^24 float32 scores (64 MiB) keep allocations reusable and caches warm; on a GPU larger tiles (1 GiB)
    mean fewer kernel launches.
    """
    return 2**24 if device.type == "cpu" else 2**28


def _eager_las_kernel(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    is_causal: bool,
    keep: torch.Tensor | None,
    dropout: float,
    query_block_size: int,
    need_probs: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    batch, heads, length, _ = query.shape
    query_starts = range(0, length, query_block_size)
    batch_step = max(1, _eager_tile_scores(query.device) // (heads * min(query_block_size, length) * length))
    batch_starts = range(0, batch, batch_step)
    # With several tiles and autograd on, recompute each tile in backward instead of storing its scores: training
    # memory stays O(tile) rather than O(batch x L^2).
    recompute = len(query_starts) * len(batch_starts) > 1 and not need_probs and torch.is_grad_enabled() and (
        query.requires_grad or key.requires_grad or value.requires_grad
    )
    # `split`, not indexing: the backward of a split is one concatenation, while every indexed slice would
    # allocate and zero a gradient the size of the whole input (quadratic work for LaS-chunk's long batches).
    tiles = zip(*(t.split(batch_step) for t in (query, key, value)), keep.split(batch_step) if keep is not None else
                [None] * len(batch_starts))  # fmt: skip
    output_rows, probs = [], []
    for tile_query, tile_key, tile_value, tile_keep in tiles:
        outputs = []
        for start in query_starts:
            stop = min(start + query_block_size, length)
            # Causal: keys after the block's last query are masked anyway, so they are not computed at all.
            num_keys = stop if is_causal else length
            args = (tile_query[:, :, start:stop], tile_key[:, :, :num_keys], tile_value[:, :, :num_keys], alphas,
                    start, is_causal, tile_keep)  # fmt: skip
            if recompute:
                out, block_probs = checkpoint(_eager_las_block, *args, dropout, need_probs, use_reentrant=False)
            else:
                out, block_probs = _eager_las_block(*args, dropout, need_probs)
            outputs.append(out)
            if need_probs:
                probs.append(F.pad(block_probs, (0, length - num_keys)))
        output_rows.append(outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-2))
    output = output_rows[0] if len(output_rows) == 1 else torch.cat(output_rows, dim=0)
    if not need_probs:
        return output, None
    # probs were collected batch tile by batch tile, query block by query block.
    per_tile = len(query_starts)
    prob_rows = [torch.cat(probs[i : i + per_tile], dim=-2) for i in range(0, len(probs), per_tile)]
    return output, torch.cat(prob_rows, dim=0)


# -- flex kernel -------------------------------------------------------------------------------------------------------


@functools.cache
def _compiled_flex_attention() -> Callable:
    """flex_attention only avoids materialising L x L when compiled; compile it once per process."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


# flex_attention's default (and create_block_mask's): tiles of 128 queries x 128 keys.
_FLEX_BLOCK_SIZE = 128


def las_flex_block_mask(
    attention_mask: torch.Tensor | None,
    batch: int,
    length: int,
    is_causal: bool,
    chunk_size: int | None,
    device: torch.device,
):
    """The flex `BlockMask` (causal and padding) for a LaS call; `None` when nothing is masked.

    For LaS-chunk it is built for the chunked layout `(batch * num_chunks, chunk_size)` that `las_attention` uses.
    Build it once per model call and pass it to every layer.
    """
    from torch.nn.attention.flex_attention import BlockMask

    keep = attention_mask.bool() if attention_mask is not None else None
    if chunk_size is not None and chunk_size < length:
        keep = las_chunk_mask(keep, batch, length, chunk_size, device)
        batch, length = batch * math.ceil(length / chunk_size), chunk_size
    if keep is not None and bool(keep.all()):
        keep = None
    if keep is None and not is_causal:
        return None

    def mask_mod(b, h, q_idx, kv_idx):
        allowed = kv_idx <= q_idx if is_causal else kv_idx >= 0
        return allowed & keep[b, kv_idx] if keep is not None else allowed

    partial, full = _flex_block_tables(keep, length, is_causal, _FLEX_BLOCK_SIZE, device)
    return BlockMask.from_kv_blocks(
        *_blocks_in_row_order(partial),
        *_blocks_in_row_order(full),
        BLOCK_SIZE=_FLEX_BLOCK_SIZE,
        mask_mod=mask_mod,
        seq_lengths=(length, length),
    )


def _flex_block_tables(
    keep: torch.Tensor | None, length: int, is_causal: bool, block_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which (query block, key block) tiles are partly and which fully visible: `(batch or 1, 1, n, n)` bool each.

    The same tables `create_block_mask` derives, but from per-block counts instead of evaluating the mask on all
    L x L positions: that costs O(batch x L^2) memory and time per model call (0.7 s and 1.25 GiB for a padded batch
    of 8 at L = 4K on one CPU core, `examples/benchmarks/block_mask.py`), this O(batch x L + batch x n^2).
    Positions past `length` in the last tile count as masked, as in `create_block_mask`.
    """
    num_blocks = math.ceil(length / block_size)
    padded = num_blocks * block_size
    positions = torch.arange(padded, device=device)
    if keep is None:
        keep = (positions < length)[None]
    else:
        keep = F.pad(keep, (0, padded - length), value=False)
    kept_per_block = keep.view(keep.shape[0], num_blocks, block_size).sum(-1)  # (batch, key block)
    any_kept = (kept_per_block > 0)[:, None, :]
    all_kept = (kept_per_block == block_size)[:, None, :]
    # A query block is fully visible only if all its rows are real positions.
    rows_complete = (positions.view(num_blocks, block_size)[:, -1] < length)[:, None]
    block_index = torch.arange(num_blocks, device=device)
    if is_causal:
        # Key blocks left of the diagonal are entirely in the past; the diagonal tile is a triangle (partial), and
        # every kept key k of it is seen by at least query k itself.
        causally_full = block_index[None, :] < block_index[:, None]
        causally_any = block_index[None, :] <= block_index[:, None]
    else:
        causally_full = causally_any = torch.ones(num_blocks, num_blocks, dtype=torch.bool, device=device)
    full = causally_full & rows_complete & all_kept
    partial = causally_any & any_kept & ~full
    return partial[:, None], full[:, None]


def _blocks_in_row_order(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A dense `(..., n, n)` tile table as flex's `(count per row, column indices with the used ones first)`."""
    tiles = tiles.to(torch.int32)
    return tiles.sum(-1, dtype=torch.int32), torch.argsort(tiles, dim=-1, descending=True, stable=True).to(torch.int32)


def _flex_las_kernel(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    is_causal: bool,
    keep: torch.Tensor | None,
    block_mask=None,
) -> torch.Tensor:
    if block_mask is None:
        block_mask = las_flex_block_mask(keep, query.shape[0], query.shape[2], is_causal, None, query.device)
    if not torch.is_grad_enabled():
        # Compiled flex would still trace a backward graph for inputs that require grad (and fail on CPU).
        query, key, value = query.detach(), key.detach(), value.detach()
    score_mod = las_decay_score_mod(alphas.to(device=query.device), is_causal)
    return _compiled_flex_attention()(query, key, value, score_mod=score_mod, block_mask=block_mask)


def las_decay_score_mod(alphas: torch.Tensor, is_causal: bool) -> Callable:
    """The LaS decay as a flex `score_mod`: `score * exp(-alpha_h |q_idx - kv_idx|)`.

    Written as `exp2(-alpha / ln 2 * distance)`, the form the kernels evaluate natively, and with the causal distance
    clamped at 0 instead of `abs`: a causal CPU call at L = 2K, head_dim 32, takes 74 ms instead of 77.5 ms
    (`results/attention_cpu-flex-2k.md`, README section 4).
    """
    log2_decay = alphas.to(torch.float32) / -math.log(2)

    def las_decay(score, b, h, q_idx, kv_idx):
        # Causal: every visible key has kv_idx <= q_idx, so the distance is q_idx - kv_idx; clamping the masked
        # future keys to 0 keeps their factor finite (unclamped it overflows to inf, and inf x 0 = NaN in backward).
        distance = (q_idx - kv_idx).clamp(min=0) if is_causal else (q_idx - kv_idx).abs()
        return score * torch.exp2(log2_decay[h] * distance)

    return las_decay


# ----------------------------------------------------------------------------------------------------------------------
# Backends, selected the transformers way (`attn_implementation=`)
# ----------------------------------------------------------------------------------------------------------------------


def _las_attention_forward(
    module: LaSAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float,
    implementation: str,
    output_attentions: bool = False,
    block_mask=None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
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
        implementation=implementation,
        query_block_size=module.query_block_size,
        block_mask=block_mask,
        return_attention_weights=output_attentions,
    )
    output, weights = result if output_attentions else (result, None)
    return output.transpose(1, 2), weights


def eager_las_attention_forward(module, query, key, value, attention_mask, dropout=0.0, **kwargs):
    """The reference backend (`attn_implementation="eager"`): blocked, materialised scores."""
    return _las_attention_forward(module, query, key, value, attention_mask, dropout, "eager", **kwargs)


def flex_las_attention_forward(module, query, key, value, attention_mask, dropout=0.0, **kwargs):
    """`attn_implementation="flex_attention"`: exact LaS through torch flex_attention on pre-smoothed values."""
    return _las_attention_forward(module, query, key, value, attention_mask, dropout, "flex", **kwargs)


# A module-local interface: the library's generic sdpa/flex functions do not know the LaS decay and must never be used.
ALL_ATTENTION_FUNCTIONS = AttentionInterface()
ALL_ATTENTION_FUNCTIONS["flex_attention"] = flex_las_attention_forward


# ----------------------------------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------------------------------


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
    ) -> torch.Tensor:
        if inputs_embeds is None:
            if self.config.input_type == "tokens":
                inputs_embeds = self.token_embeddings(input_ids)
            else:
                inputs_embeds = self.pixel_projection(pixel_values.to(self.pixel_projection.weight.dtype)[..., None])
        length = inputs_embeds.shape[1]
        if self.config.position_embedding_type == "learned":
            inputs_embeds = inputs_embeds + self.position_embeddings.weight[:length]
        elif self.config.position_embedding_type == "sinusoidal":
            inputs_embeds = inputs_embeds + self.sinusoidal_table[:length].to(inputs_embeds.dtype)
        return self.dropout(inputs_embeds)


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
        self.query_block_size = config.attention_query_block_size
        self.attention_dropout = config.attention_dropout
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)
        # Fixed, not learned ("no additional trainable parameters"); rebuilt from the config in `_init_weights`.
        self.register_buffer("alphas", torch.tensor(config.head_alphas, dtype=torch.float32), persistent=False)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        block_mask=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        split_heads = lambda x: x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # noqa: E731
        query = split_heads(self.q_proj(hidden_states))
        key = split_heads(self.k_proj(hidden_states))
        value = split_heads(self.v_proj(hidden_states))

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_las_attention_forward
        )
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            output_attentions=output_attentions,
            block_mask=block_mask,
        )
        return self.o_proj(output.reshape(batch, length, -1)), weights


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

    def _residual(self, hidden_states: torch.Tensor, norm: LaSNorm, branch: Callable) -> tuple[torch.Tensor, object]:
        branch_output, extra = branch(norm(hidden_states) if self.prenorm else hidden_states)
        hidden_states = hidden_states + self.dropout(branch_output)
        return (hidden_states if self.prenorm else norm(hidden_states)), extra

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        block_mask=None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden_states, weights = self._residual(
            hidden_states,
            self.attention_norm,
            lambda x: self.attention(x, attention_mask, output_attentions=output_attentions, block_mask=block_mask),
        )
        hidden_states, _ = self._residual(hidden_states, self.mlp_norm, lambda x: (self.mlp(x), None))
        return hidden_states, weights


class LaSPreTrainedModel(PreTrainedModel):
    config_class = LaSConfig
    config: LaSConfig
    base_model_prefix = "las"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LaSLayer"]
    # The library's generic SDPA/flash kernels would silently drop the LaS decay: only our own backends are offered.
    _supports_sdpa = False
    _supports_flash_attn = False
    _supports_flex_attn = True
    # Our forward does not take `num_items_in_batch`: Trainer must average the loss over gradient-accumulation steps
    # itself (without this flag it assumes the model does, and scales the loss of a DDP run by the world size).
    accepts_loss_kwargs = False

    def __init__(self, config: LaSConfig, *inputs, **kwargs):
        # Fields assigned one by one after the config was built are checked together here, before any layer is built:
        # a bad combination is a named ValueError, not a reshape error in the first forward.
        config.validate_las()
        super().__init__(config, *inputs, **kwargs)
        if config.input_type == "pixels":
            # What Trainer and pipelines read to find the model's main input.
            self.main_input_name = "pixel_values"

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
) -> tuple[int, ...]:
    """Validate what the user passed and return the shape of the sequence axes (batch[, 2], length)."""
    given = {name: t for name, t in (("input_ids", input_ids), ("pixel_values", pixel_values), ("inputs_embeds", inputs_embeds)) if t is not None}
    if len(given) != 1:
        expected = "input_ids" if config.input_type == "tokens" else "pixel_values"
        raise ValueError(f"Pass exactly one of {expected} or inputs_embeds; got {sorted(given) or 'none'}.")
    name, tensor = next(iter(given.items()))
    if name == "input_ids" and config.input_type != "tokens":
        raise ValueError("This model has input_type='pixels': pass pixel_values (one float per position), not input_ids.")
    if name == "pixel_values" and config.input_type != "pixels":
        raise ValueError("This model has input_type='tokens': pass input_ids, not pixel_values.")
    sequence_shape = tuple(tensor.shape[:-1] if name == "inputs_embeds" else tensor.shape)
    expected_rank = 3 if config.dual_encoder else 2
    if len(sequence_shape) != expected_rank:
        layout = "(batch, 2, length)" if config.dual_encoder else "(batch, length)"
        raise ValueError(f"{name} must be shaped {layout}{' + (hidden_size,)' if name == 'inputs_embeds' else ''}; got {tuple(tensor.shape)}.")
    if config.dual_encoder and sequence_shape[1] != 2:
        raise ValueError(f"A dual encoder takes two documents per example: {name} shaped (batch, 2, length); got {tuple(tensor.shape)}.")
    if attention_mask is not None and tuple(attention_mask.shape) != sequence_shape:
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match {name} shape {sequence_shape}.")
    length = sequence_shape[-1]
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
            raise ValueError(f"input_ids must lie in [0, vocab_size={config.vocab_size}); found values in [{low}, {high}].")
    return sequence_shape


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

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> BaseModelOutput:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch, length)`, or `(batch, 2, length)` for a dual encoder):
            Token ids (`input_type="tokens"`).
        attention_mask (same shape as the inputs): 1 for real positions, 0 for padding (right padding).
        pixel_values (`torch.FloatTensor` of shape `(batch, length)` or `(batch, 2, length)`):
            One value per position (`input_type="pixels"`), e.g. grayscale pixels scaled to [0, 1].
        inputs_embeds (`torch.FloatTensor` of shape `(..., length, hidden_size)`): precomputed input vectors.

        Returns `last_hidden_state` shaped like the inputs plus `hidden_size` (a dual encoder keeps its `2` axis),
        and, when asked, every layer's `hidden_states` and `attentions` (the LaS matrices after smoothing).

        There is no `**kwargs`: a misspelt argument (`attention_masks=`) is a `TypeError` naming it, not a silently
        ignored mask. `return_dict` is handled by the `can_return_tuple` decorator.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        sequence_shape = _check_model_inputs(self.config, input_ids, pixel_values, inputs_embeds, attention_mask)
        flat = lambda t: None if t is None else t.reshape(-1, *t.shape[len(sequence_shape) - 1 :])  # noqa: E731
        input_ids, pixel_values, attention_mask = flat(input_ids), flat(pixel_values), flat(attention_mask)
        inputs_embeds = None if inputs_embeds is None else inputs_embeds.reshape(-1, *inputs_embeds.shape[-2:])

        hidden_states = self.embeddings(input_ids, pixel_values, inputs_embeds)
        batch, length = hidden_states.shape[:2]
        block_mask = None
        if self.config._attn_implementation == "flex_attention":
            block_mask = las_flex_block_mask(
                attention_mask, batch, length, self.config.is_causal, self.config.effective_chunk_size, hidden_states.device
            )

        all_hidden_states, all_attentions = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            hidden_states, weights = layer(
                hidden_states, attention_mask=attention_mask, output_attentions=output_attentions, block_mask=block_mask
            )
            if output_attentions:
                all_attentions.append(weights)
        hidden_states = self.final_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states.append(hidden_states)

        # A dual encoder gets its (batch, 2, ...) layout back.
        unflat = lambda t: t.reshape(*sequence_shape[:-1], *t.shape[1:])  # noqa: E731
        return BaseModelOutput(
            last_hidden_state=unflat(hidden_states),
            hidden_states=tuple(map(unflat, all_hidden_states)) if output_hidden_states else None,
            attentions=tuple(map(unflat, all_attentions)) if output_attentions else None,
        )


def pool_sequence(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """Reduce `(..., length, hidden)` to `(..., hidden)`: mean over real positions, first, or last real position."""
    if pooling == "first":
        return hidden_states[..., 0, :]
    if attention_mask is None:
        attention_mask = hidden_states.new_ones(hidden_states.shape[:-1])
    keep = attention_mask.to(hidden_states.dtype)
    if pooling == "mean":
        # clamp: a fully padded sequence pools to zeros instead of 0/0 = NaN.
        return (hidden_states * keep[..., None]).sum(-2) / keep.sum(-1, keepdim=True).clamp(min=1)
    positions = torch.arange(keep.shape[-1], device=keep.device)
    last = (attention_mask.long() * positions).amax(-1)
    return torch.gather(hidden_states, -2, last[..., None, None].expand(*last.shape, 1, hidden_states.shape[-1])).squeeze(-2)


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
    ) -> SequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch,)`, or float `(batch, num_labels)` for multi-label / regression):
            Cross-entropy for single-label classification, BCE-with-logits for multi-label, MSE for regression
            (`config.problem_type`, inferred from `num_labels` and the label dtype when unset).
        """
        outputs = self.las(
            input_ids,
            attention_mask=attention_mask,
            pixel_values=pixel_values,
            inputs_embeds=inputs_embeds,
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


def register_las_auto_classes() -> None:
    """Register with the Auto classes (config, models, image processor), and for Hub remote code."""
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
    )

    try:
        AutoConfig.register(LaSConfig.model_type, LaSConfig)
    except ValueError:  # already registered (module imported twice, e.g. as remote code and locally)
        pass
    for auto_class, model_class in (
        (AutoModel, LaSModel),
        (AutoModelForSequenceClassification, LaSForSequenceClassification),
        (AutoModelForImageClassification, LaSForImageClassification),
    ):
        try:
            auto_class.register(LaSConfig, model_class)
        except ValueError:
            pass
    # Our processor works on numpy and Pillow: the "pil" backend (transformers falls back to it without torchvision).
    AutoImageProcessor.register(LaSConfig, image_processor_classes={"pil": LaSImageProcessor}, exist_ok=True)
    LaSConfig.register_for_auto_class()
    LaSModel.register_for_auto_class("AutoModel")
    LaSForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
    LaSForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    LaSImageProcessor.register_for_auto_class("AutoImageProcessor")


register_las_auto_classes()

__all__ = [
    "LaSConfig",
    "LaSModel",
    "LaSForSequenceClassification",
    "LaSForImageClassification",
    "LaSImageProcessor",
    "LaSPreTrainedModel",
    "las_attention",
    "las_attention_reference",
    "las_flex_block_mask",
    "las_decay_score_mod",
    "eager_las_attention_forward",
    "flex_las_attention_forward",
    "pool_sequence",
]
