# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""LaS attention kernels: the math of Local and Smooth attention on `(batch, heads, length, head_dim)` tensors.

LaS attention (Zimerman & Wolf, ICML 2024), for one head c with decay rate alpha_c and smoothing window P:

    LaS_c(Q, K, V) = AP( softmax( exp(-alpha_c * |i - j|) * Q K^T / sqrt(d) + M ) ) V

where M is the (causal and padding) mask and AP is a 1-D average pooling over every row of the attention matrix.
Pooling a row is a right-multiplication by a banded matrix P, so AP(A) V = A (P V): smoothing the attention matrix is
exactly smoothing V along the sequence. Every kernel below computes LaS that way, and `las_attention` is the one entry
point: it smooths V, handles padding and chunking, and hands softmax-with-decay to one of three kernels:

- `eager`: materialised scores over blocks of queries (O(block x L) memory); the only one that returns the matrix.
- `sdpa`: `F.scaled_dot_product_attention` (FlashAttention on a GPU) on rescaled queries and keys. In the causal case
  the decay is separable, exp(-a (i - j)) (q_i . k_j) = (q_i e^{-a i}) . (k_j e^{a j}); per block of queries the
  scales stay inside the dtype's range.
- `flex_attention`: `torch.compile(flex_attention)` with the decay as a `score_mod`.

`position_bias="alibi"` swaps the multiplicative decay for ALiBi's additive bias `-m_h |i - j|` (Press et al., 2022),
the locality bias of language models, so that the baseline runs through the same kernels, padding and chunking.

`las_attention_reference` is the literal definition (O(L^2)), kept apart to check all of them in tests.
`las_smooth_new_values` and `las_attention_step` are the same math for the steps of a KV cache (causal window):
they smooth only the new values and run the eager or sdpa kernel with the queries placed after the cached keys.

This file ships beside `modeling_las.py` as Hub remote code (`save_pretrained` copies relatively imported files), so
it imports nothing from this package.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right
from torch.utils.checkpoint import checkpoint
from transformers.utils import logging

logger = logging.get_logger(__name__)

#: The kernels of `las_attention`, named as transformers' `attn_implementation` values that select them.
LAS_IMPLEMENTATIONS = ("eager", "sdpa", "flex_attention")
#: How a head's rate enters its scores: "decay", LaS's `s * exp(-rate |i - j|)`; "alibi", ALiBi's `s - rate |i - j|`.
POSITION_BIASES = ("decay", "alibi")


# ---------------------------------------------------------------------------------------------------------------------
# Smoothing and the entry point
# ---------------------------------------------------------------------------------------------------------------------


def smooth_along(
    x: torch.Tensor, dim: int, pool_size: int, left: int, window_keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Average `x` along `dim` over the window `[t - left, t - left + pool_size - 1]` with zero padding.

    `window_keep`, broadcastable to `x`'s shape with a last axis of `pool_size`, zeroes single window entries (the
    entries a LaS-chunk window must not take from the previous chunk); the divisor stays `pool_size`.

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
    if window_keep is not None:
        windows = windows * window_keep.to(x.dtype)
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
    position_bias: str = "decay",
) -> None:
    if query.dim() != 4 or key.shape != query.shape or value.shape[:-1] != query.shape[:-1]:
        raise ValueError(
            "las_attention expects query, key and value shaped (batch, heads, length, head_dim) with matching "
            f"batch/heads/length; got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}."
        )
    if alphas.shape != (query.shape[1],):
        raise ValueError(
            f"alphas must hold one decay rate per head: shape ({query.shape[1]},), got {tuple(alphas.shape)}."
        )
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
    if position_bias not in POSITION_BIASES:
        raise ValueError(f"position_bias={position_bias!r} is not one of {POSITION_BIASES}.")


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
    position_bias: str = "decay",
    max_alpha: float | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """LaS attention on `(batch, heads, length, head_dim)` tensors; returns `(batch, heads, length, head_dim)`.

    Args:
        query, key, value: the projected inputs of every head.
        alphas: `(heads,)` decay rates; head h multiplies its scaled scores by `exp(-alphas[h] * |i - j|)`.
        pool_size: window P of the row smoothing (1 = none).
        pool_mode: `"symmetric"` (centred window) or `"causal"` (window over keys j .. j+P-1).
        is_causal: mask keys after the query.
        attention_mask: `(batch, length)`, 1 = keep, 0 = padding. Padded positions behave as if they did not exist:
            their keys are masked, their values are zeroed before smoothing (masking keys alone would let the
            smoothing move weight onto a padded value), and their outputs are zero.
        chunk_size: if set, LaS-chunk: LaS applied separately inside non-overlapping chunks of this length. Chunks
            start at each row's first real position (`attention_mask`), so left padding does not move them.
        dropout: dropout probability on the attention probabilities (pass 0.0 in evaluation).
        implementation: one of `LAS_IMPLEMENTATIONS`. `"eager"`: materialised scores over blocks of
            `query_block_size` queries, O(block x L) memory (also in training: each block is recomputed in backward).
            `"sdpa"`: `F.scaled_dot_product_attention` on rescaled queries and keys (causal only; bidirectional calls
            use the eager kernel). `"flex_attention"`: compiled flex_attention with a multiplicative `score_mod`.
            The attention matrix (`return_attention_weights`) always comes from the eager kernel.
        query_block_size: queries per block of the eager and sdpa kernels (a speed/memory knob; results do not
            depend on it; the sdpa kernel may use smaller blocks to keep its scales inside the dtype's range).
        block_mask: an optional precomputed flex `BlockMask` (see `las_flex_block_mask`), to build it once per model
            call instead of once per layer.
        return_attention_weights: also return the LaS attention matrix after smoothing, `(batch, heads, L, L)`,
            with the columns of padded keys and the rows of padded queries zeroed (the weights that multiply V).
        position_bias: `"decay"` (LaS: the scaled scores are multiplied by `exp(-alphas[h] |i - j|)`) or `"alibi"`
            (ALiBi: `alphas` are the head slopes m_h and `-m_h |i - j|` is added to the scaled scores).
        max_alpha: optional python float, at least `alphas.max()` (the config's largest decay): the sdpa kernel then
            plans its blocks without reading `alphas` on the host (no device sync, nothing data-dependent for
            `torch.compile(fullgraph=True)`). A larger value only makes the blocks shorter; a smaller one is an error
            the kernel cannot detect.

    `alphas = 0` and `pool_size = 1` is plain softmax attention (with either position bias).
    """
    _check_las_arguments(
        query, key, value, alphas, pool_size, pool_mode, attention_mask, chunk_size, implementation, position_bias
    )
    keep = attention_mask.bool() if attention_mask is not None else None
    batch, heads, length, _ = query.shape

    if chunk_size is not None and chunk_size < length:
        shift = first_real_positions(keep) if keep is not None else None
        if shift is not None and bool(shift.any()):
            # Left padding: chunks start at each row's first real token, so that a left-padded sequence is chunked
            # as it is alone. Rotate every row to start there (its padding moves to the end), attend, rotate back.
            rolled = las_attention(
                *(roll_rows(t, shift, dim=2) for t in (query, key, value)),
                alphas,
                pool_size,
                pool_mode,
                is_causal,
                roll_rows(keep, shift, dim=1),
                chunk_size,
                dropout,
                implementation=implementation,
                query_block_size=query_block_size,
                block_mask=block_mask,
                return_attention_weights=return_attention_weights,
                position_bias=position_bias,
                max_alpha=max_alpha,
            )
            if not return_attention_weights:
                return roll_rows(rolled, -shift, dim=2)
            output, weights = rolled
            return roll_rows(output, -shift, dim=2), roll_rows(roll_rows(weights, -shift, dim=2), -shift, dim=3)
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
            position_bias=position_bias,
            max_alpha=max_alpha,
        )
        if not return_attention_weights:
            return _merge_chunks(result, batch, length)
        output, weights = result
        return _merge_chunks(output, batch, length), _block_diagonal(weights, batch, length)

    if keep is not None:
        # A padded value must not be smoothed into a real position's value.
        value = value * keep[:, None, :, None].to(value.dtype)
    row_left = attention_row_window_left(pool_size, pool_mode)
    # V smoothed along the sequence with the row window's transpose (module docstring).
    value_window = (pool_size, pool_size - 1 - row_left) if pool_size > 1 else None

    kernel = _choose_kernel(implementation, query, key, value, is_causal, dropout, return_attention_weights)
    probs = None
    if kernel == "sdpa" and position_bias == "decay":
        # The sdpa kernel smooths V itself: its backward recomputes the smoothed values instead of keeping them.
        output = _sdpa_las_kernel(
            query, key, value, alphas, keep, dropout, query_block_size, max_alpha=max_alpha, smoothing=value_window
        )
    else:
        smoothed_value = _smooth_values(value, value_window)
        if kernel == "sdpa":  # ALiBi: an additive bias per block of queries
            output = _sdpa_alibi_kernel(query, key, smoothed_value, alphas, keep, dropout, query_block_size)
        elif kernel == "flex_attention":
            output = _flex_las_kernel(query, key, smoothed_value, alphas, is_causal, keep, block_mask, position_bias)
        else:
            output, probs = _eager_las_kernel(
                query,
                key,
                smoothed_value,
                alphas,
                is_causal,
                keep,
                dropout,
                query_block_size,
                return_attention_weights,
                position_bias=position_bias,
            )
    if keep is not None:
        # A padded query does not exist: its output is zero (the kernels may compute anything finite there).
        output = output * keep[:, None, :, None].to(output.dtype)
    if not return_attention_weights:
        return output
    weights = smooth_along(probs, dim=-1, pool_size=pool_size, left=row_left)
    if keep is not None:
        weights = weights * (keep[:, None, :, None] & keep[:, None, None, :]).to(weights.dtype)
    return output, weights


def _choose_kernel(
    implementation: str,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    is_causal: bool,
    dropout: float,
    return_attention_weights: bool,
) -> str:
    """The kernel that runs a call: the requested one, or eager where the requested one cannot do what is asked."""
    if implementation == "eager" or return_attention_weights:
        # Only the eager kernel materialises the matrix; asking for it is asking for eager (as in transformers).
        return "eager"
    if implementation == "sdpa" and not is_causal:
        logger.warning_once(
            "LaS sdpa attention is causal only (the decay is separable only for keys before the query): "
            "bidirectional attention (is_causal=False) runs on the eager kernel."
        )
        return "eager"
    if implementation == "flex_attention" and (dropout > 0.0 or _cpu_backward_needed(query, key, value)):
        logger.warning_once(
            "LaS flex attention falls back to the eager kernel here (attention dropout, or a backward pass on CPU, "
            "which torch's flex_attention does not support)."
        )
        return "eager"
    return implementation


# -- KV-cache steps ---------------------------------------------------------------------------------------------------
#
# A causal model with `pool_mode="causal"` can decode incrementally: position t's smoothed value is the mean of the raw
# values of positions t-P+1 .. t, which never changes once t is past. So a cache holds the keys and the *smoothed*
# values of the past, plus the raw values of its last P-1 positions, which the next smoothed values need. A step then
# smooths its n new values (`las_smooth_new_values`) and attends with its n queries to all cached and new keys
# (`las_attention_step`), with the decay on absolute distances: the same numbers as rows T-n .. T-1 of `las_attention`
# on the whole sequence.


def las_smooth_new_values(
    value: torch.Tensor,
    previous_raw: torch.Tensor | None,
    pool_size: int,
    attention_mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal-window smoothed values of the last n positions of a sequence, and their raw values to cache.

    Args:
        value: `(batch, heads, n, head_dim)` raw values of positions T-n .. T-1.
        previous_raw: `(batch, heads, m, head_dim)`, the raw values this function returned for positions T-n-m .. T-n-1
            (at least the last P-1 of them; fewer at the start of a sequence), or `None` at the start.
        attention_mask: `(batch, T)` keep-mask of all positions so far (1 = real, 0 = padding), or `None`.
        chunk_size: LaS-chunk's chunk length: the window does not reach into the previous chunk (after a cache,
            `attention_mask` is then required: it places the chunks).

    Returns `(smoothed, raw)`, both `(batch, heads, n, head_dim)`; `raw` is `value` with padded positions zeroed.
    """
    batch, _, new, _ = value.shape
    keep = attention_mask.bool() if attention_mask is not None else None
    if keep is not None:
        # A padded value must not be smoothed into a real position's value (as in `las_attention`).
        value = value * keep[:, None, -new:, None].to(value.dtype)
    if pool_size == 1:
        return value, value
    context = pool_size - 1
    tail = previous_raw[:, :, -context:] if previous_raw is not None else value[:, :, :0]
    window = torch.cat([F.pad(tail, (0, 0, context - tail.shape[2], 0)), value], dim=2)  # positions T-n-P+1 .. T-1
    window_keep = None
    if chunk_size is not None:
        # Entry k of the window of position t is position t - (P-1) + k: it counts only inside t's chunk.
        if attention_mask is None and previous_raw is not None:
            raise ValueError(
                "las_smooth_new_values with chunk_size after a cache needs attention_mask over all positions (cached "
                "and new): the chunks are placed by absolute position."
            )
        total = attention_mask.shape[-1] if attention_mask is not None else new
        ids = chunk_ids(keep, batch, total, chunk_size, value.device)
        ids = F.pad(ids[:, -(new + context) :], (max(0, new + context - total), 0), value=-(2**31))
        positions = torch.arange(new + context, device=value.device)
        window_index = (positions[:, None] - context + torch.arange(pool_size, device=value.device)).clamp(min=0)
        window_keep = ids[:, window_index] == ids[:, :, None]  # (batch, positions, pool_size)
        window_keep = window_keep[:, None, :, None, :]
    smoothed = smooth_along(window, dim=-2, pool_size=pool_size, left=context, window_keep=window_keep)
    return smoothed[:, :, context:], value


def las_attention_step(
    query: torch.Tensor,
    key: torch.Tensor,
    smoothed_value: torch.Tensor,
    alphas: torch.Tensor,
    pool_size: int = 1,
    attention_mask: torch.Tensor | None = None,
    chunk_size: int | None = None,
    dropout: float = 0.0,
    *,
    implementation: str = "eager",
    query_block_size: int = 512,
    return_attention_weights: bool = False,
    position_bias: str = "decay",
    max_alpha: float | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
    """Causal LaS for the last n positions of a sequence of T, from all T keys and smoothed values (a KV-cache step).

    Args:
        query: `(batch, heads, n, head_dim)`, the queries of positions T-n .. T-1.
        key, smoothed_value: `(batch, heads, T, head_dim)`; values smoothed by `las_smooth_new_values`.
        pool_size: P, only to smooth the rows of the returned attention matrix.
        attention_mask: `(batch, T)` keep-mask of all positions, or `None`.
        chunk_size: LaS-chunk: a query sees only the keys of its own chunk (`chunk_ids`).
        implementation: `"eager"` or `"sdpa"`; `"flex_attention"` runs the sdpa kernel here, because compiled flex
            attention has static shapes and would recompile for every new cache length.
        max_alpha: as in `las_attention`.

    Returns what `las_attention` returns for rows T-n .. T-1 (with `return_attention_weights`, `(batch, heads, n, T)`).
    """
    batch, heads, new, _ = query.shape
    total = key.shape[-2]
    shapes_match = key.shape[:2] == query.shape[:2] and key.shape[-1] == query.shape[-1]
    if not shapes_match or smoothed_value.shape[:3] != key.shape[:3]:
        raise ValueError(
            "las_attention_step expects query (batch, heads, n, head_dim) and key, smoothed_value (batch, heads, T, "
            f"head_dim) with T >= n; got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(smoothed_value.shape)}."
        )
    if total < new:
        raise ValueError(
            f"las_attention_step: {new} queries but only {total} keys; the keys must include the queries'."
        )
    if attention_mask is not None and attention_mask.shape != (batch, total):
        raise ValueError(
            f"attention_mask must cover all {total} positions, cached and new: shape {(batch, total)}; got "
            f"{tuple(attention_mask.shape)}."
        )
    if implementation not in LAS_IMPLEMENTATIONS:
        raise ValueError(f"implementation={implementation!r} is not one of {LAS_IMPLEMENTATIONS}.")
    if position_bias not in POSITION_BIASES:
        raise ValueError(f"position_bias={position_bias!r} is not one of {POSITION_BIASES}.")
    keep = attention_mask.bool() if attention_mask is not None else None
    if keep is not None and bool(keep.all()):
        keep = None
    pair_keep = None
    if chunk_size is not None and total > 1:
        ids = chunk_ids(keep, batch, total, chunk_size, query.device)
        pair_keep = (ids[:, -new:, None] == ids[:, None, :])[:, None]  # (batch, 1, n, T)
    start = total - new
    probs = None
    if implementation == "eager" or return_attention_weights:
        output, probs = _eager_las_kernel(
            query,
            key,
            smoothed_value,
            alphas,
            True,
            keep,
            dropout,
            query_block_size,
            return_attention_weights,
            query_start=start,
            pair_keep=pair_keep,
            position_bias=position_bias,
        )
    elif position_bias == "alibi":
        output = _sdpa_alibi_kernel(
            query, key, smoothed_value, alphas, keep, dropout, query_block_size, query_start=start, pair_keep=pair_keep
        )
    else:
        output = _sdpa_las_kernel(
            query,
            key,
            smoothed_value,
            alphas,
            keep,
            dropout,
            query_block_size,
            query_start=start,
            pair_keep=pair_keep,
            max_alpha=max_alpha,
        )
    if keep is not None:
        output = output * keep[:, None, start:, None].to(output.dtype)
    if not return_attention_weights:
        return output
    weights = smooth_along(probs, dim=-1, pool_size=pool_size, left=0)
    allowed = torch.ones_like(weights, dtype=torch.bool)
    if keep is not None:
        allowed = allowed & keep[:, None, start:, None] & keep[:, None, None, :]
    if pair_keep is not None:
        # Row smoothing must not carry weight across the chunk boundary (the chunks' matrices are block-diagonal).
        allowed = allowed & pair_keep
    return output, weights * allowed.to(weights.dtype)


def las_attention_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    pool_size: int = 1,
    pool_mode: str = "symmetric",
    is_causal: bool = True,
    attention_mask: torch.Tensor | None = None,
    position_bias: str = "decay",
) -> torch.Tensor:
    """The literal definition, O(L^2) memory: never used by the model.

    Materialise `exp(-alpha |i - j|) * Q K^T / sqrt(d)` (ALiBi, `position_bias="alibi"`: `Q K^T / sqrt(d) - m |i - j|`
    with the slopes m in `alphas`), mask, softmax, average-pool every row of the matrix, multiply
    by V (padded values count as zero; padded queries output zero). It exists to check the fast paths in tests and
    as the naive baseline in benchmarks, and deliberately shares no code with `las_attention`.
    """
    length, head_dim = query.shape[-2], query.shape[-1]
    positions = torch.arange(length, device=query.device)
    distance = (positions[:, None] - positions[None, :]).abs()
    rates = alphas.to(query.dtype)[:, None, None]
    if position_bias == "alibi":
        scores = (query @ key.transpose(-1, -2)) / math.sqrt(head_dim) - rates * distance
    else:
        scores = torch.exp(-rates * distance) * (query @ key.transpose(-1, -2)) / math.sqrt(head_dim)
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
        # Padded keys get no weight, and padded queries (which do not exist) no output.
        pooled = pooled * keep * keep.transpose(-1, -2)
    return pooled @ value


def _cpu_backward_needed(*tensors: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad and t.device.type == "cpu" for t in tensors)


# -- LaS-chunk --------------------------------------------------------------------------------------------------------


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


def first_real_positions(keep: torch.Tensor) -> torch.Tensor:
    """`(batch,)` index of the first real position of every row of a `(batch, length)` keep-mask (0 if none)."""
    return keep.to(torch.int8).argmax(-1)


def roll_rows(x: torch.Tensor, shift: torch.Tensor, dim: int) -> torch.Tensor:
    """Rotate every row b of `x` (batch first) by `shift[b]` along `dim`: `out[b, .., i] = x[b, .., i + shift[b]]`."""
    length = x.shape[dim]
    index = (torch.arange(length, device=x.device)[None, :] + shift[:, None].to(x.device)) % length  # (batch, length)
    view = [x.shape[0]] + [1] * (x.ndim - 1)
    view[dim] = length
    return x.gather(dim, index.view(view).expand_as(x))


def chunk_ids(
    keep: torch.Tensor | None, batch: int, length: int, chunk_size: int, device: torch.device
) -> torch.Tensor:
    """`(batch, length)` LaS-chunk index of every position: chunks of `chunk_size` from each row's first real position.

    The same chunks `las_attention` forms (positions before the first real one are padding and get negative ids).
    """
    positions = torch.arange(length, device=device)[None, :]
    if keep is None:
        return torch.div(positions, chunk_size, rounding_mode="floor").expand(batch, length)
    first = first_real_positions(keep)[:, None]
    return torch.div(positions - first, chunk_size, rounding_mode="floor")


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


# -- eager kernel: blocks of queries ----------------------------------------------------------------------------------


def _eager_las_block(
    query_block: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    query_start: int,
    is_causal: bool,
    keep: torch.Tensor | None,
    pair_keep: torch.Tensor | None,
    dropout: float,
    need_probs: bool,
    position_bias: str = "decay",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax attention with the LaS decay (or ALiBi's bias) for queries `query_start .. query_start + block - 1`.

    `keep` masks keys `(batch, keys)`; `pair_keep`, `(batch, 1, block, keys)`, masks (query, key) pairs (KV-cache steps
    of LaS-chunk, where the visible keys depend on the query's chunk).
    """
    block = query_block.shape[-2]
    num_keys = key.shape[-2]
    query_pos = torch.arange(query_start, query_start + block, device=query_block.device)
    key_pos = torch.arange(num_keys, device=query_block.device)
    distance = (query_pos[:, None] - key_pos[None, :]).abs()

    # Decay and softmax run in at least float32, also for half-precision inputs.
    compute_dtype = torch.promote_types(query_block.dtype, torch.float32)
    rates = alphas.to(compute_dtype)[:, None, None]
    scale = query_block.shape[-1] ** -0.5
    raw_scores = torch.matmul(query_block, key.transpose(-1, -2)).to(compute_dtype)
    if position_bias == "alibi":
        # ALiBi adds -m_h |i - j| to the scaled scores: distant keys are pushed towards weight 0. Folded into the
        # scores here, so the shared code below sees plain softmax with a unit "decay".
        raw_scores = raw_scores * scale - rates * distance
        decay = torch.ones((), dtype=compute_dtype, device=raw_scores.device)
    else:
        # The 1/sqrt(d) scale and the decay exp(-alpha_h |i - j|) form one (heads, block, keys) table shared by the
        # batch. The decay multiplies the scores (unlike ALiBi's additive bias): distant scores are pulled towards 0.
        decay = torch.exp(-rates * distance) * scale

    allowed = None
    if is_causal:
        allowed = (key_pos[None, :] <= query_pos[:, None])[None, None]
    if keep is not None:
        key_keep = keep[:, None, None, :num_keys]
        allowed = key_keep if allowed is None else allowed & key_keep
    if pair_keep is not None:
        allowed = pair_keep if allowed is None else allowed & pair_keep
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
    query_start: int = 0,
    pair_keep: torch.Tensor | None = None,
    position_bias: str = "decay",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Queries are positions `query_start ..` of the keys (0: a full sequence; the cache length: a cached step)."""
    batch, heads, length, _ = query.shape
    total_keys = key.shape[-2]
    query_starts = range(0, length, query_block_size)
    batch_step = max(1, _eager_tile_scores(query.device) // (heads * min(query_block_size, length) * total_keys))
    batch_starts = range(0, batch, batch_step)
    # With several tiles and autograd on, recompute each tile in backward instead of storing its scores: training
    # memory stays O(tile) rather than O(batch x L^2).
    recompute = (
        len(query_starts) * len(batch_starts) > 1
        and not need_probs
        and torch.is_grad_enabled()
        and (query.requires_grad or key.requires_grad or value.requires_grad)
    )
    # `split`, not indexing: the backward of a split is one concatenation, while every indexed slice would
    # allocate and zero a gradient the size of the whole input (quadratic work for LaS-chunk's long batches).
    no_mask = [None] * len(batch_starts)
    tiles = zip(
        *(t.split(batch_step) for t in (query, key, value)),
        keep.split(batch_step) if keep is not None else no_mask,
        pair_keep.split(batch_step) if pair_keep is not None else no_mask,
    )
    output_rows, probs = [], []
    for tile_query, tile_key, tile_value, tile_keep, tile_pair_keep in tiles:
        outputs = []
        for start in query_starts:
            stop = min(start + query_block_size, length)
            # Causal: keys after the block's last query are masked anyway, so they are not computed at all.
            num_keys = query_start + stop if is_causal else total_keys
            block_pair_keep = tile_pair_keep[:, :, start:stop, :num_keys] if tile_pair_keep is not None else None
            args = (
                tile_query[:, :, start:stop],
                tile_key[:, :, :num_keys],
                tile_value[:, :, :num_keys],
                alphas,
                query_start + start,
                is_causal,
                tile_keep,
                block_pair_keep,
            )
            if recompute:
                out, block_probs = checkpoint(
                    _eager_las_block, *args, dropout, need_probs, position_bias, use_reentrant=False
                )
            else:
                out, block_probs = _eager_las_block(*args, dropout, need_probs, position_bias)
            outputs.append(out)
            if need_probs:
                probs.append(F.pad(block_probs, (0, total_keys - num_keys)))
        output_rows.append(outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-2))
    output = output_rows[0] if len(output_rows) == 1 else torch.cat(output_rows, dim=0)
    if not need_probs:
        return output, None
    # probs were collected batch tile by batch tile, query block by query block.
    per_tile = len(query_starts)
    prob_rows = [torch.cat(probs[i : i + per_tile], dim=-2) for i in range(0, len(probs), per_tile)]
    return output, torch.cat(prob_rows, dim=0)


# -- sdpa kernel: the causal decay is separable -----------------------------------------------------------------------
#
# Causal LaS on SDPA kernels, FlashAttention style. Per block of queries [i0, i1), the keys fall in three parts, each
# an attention over the same queries; the parts are merged through their log-sum-exp, exactly as FlashAttention merges
# its key tiles:
#
# - the diagonal tile, keys [i0, i1): square causal attention on rescaled queries q_i e^{-a (i - i0)} and keys
#   k_j e^{a (j - i0)} (the decay is separable for j <= i); the scales reach e^{a (i1 - i0)}, so a block is short
#   enough to keep `a * block` inside the dtype's range;
# - the near past, keys [p0, i0): attention without a mask, with the same scales, which are all <= 1 there;
# - the far past, keys j < p0 with a (i - j) >= T for every query of the block: their decayed score
#   s e^{-a (i - j)} is 0 to working precision (`far_field_exponent`), so each has weight e^0 = 1. Their
#   contribution is the sum of their values and their count, running sums across blocks: O(L x band), not O(L^2).
#
# One autograd Function owns forward and backward: it saves q, k, v, the output and the log-sum-exp, and backward
# recomputes each part with the attention backward kernel, given the merged output and log-sum-exp (the probabilities
# of a part are exp(s - lse) with the merged lse, and the row term sum(dO * O) uses the merged output, so each part's
# backward yields exactly its share of the gradients). Heads whose decay is so large that their near band is a few
# keys (where the diagonal tile would be a few queries) run a banded kernel instead: the band of every query
# computed directly, the far past as above.

#: The largest exponent a query or key scale may reach, per dtype: `exp(bound)` times a typical |q . k| must stay
#: finite (also for the masked future keys of a block, whose scores are computed before they are masked).
_SCALE_EXPONENT_BOUND = {torch.float16: 4.0, torch.bfloat16: 60.0, torch.float32: 60.0, torch.float64: 600.0}

#: How far below the dtype's resolution a dropped score lies: with T = log(1 / eps) + margin, a far key's logit
#: error |s| e^{-a (i - j)} <= |s| eps e^{-margin}, 2% of one rounding of a logit of size |s|.
_FAR_FIELD_MARGIN = 4.0

#: Heads whose diagonal tile would hold fewer queries than this (alpha > 60 / 64 in float32 and bfloat16, > 4 / 64
#: in float16) run the band kernel: their near band is then at most ~22 keys (float32), ~10 (bfloat16), ~180 (float16).
_MIN_SDPA_BLOCK = 64


def sdpa_query_block_size(max_alpha: float, dtype: torch.dtype, query_block_size: int) -> int:
    """Queries per SDPA call: at most `query_block_size`, and few enough that `max_alpha * block` stays in range."""
    if max_alpha <= 0.0:
        return query_block_size
    return max(1, min(query_block_size, int(_SCALE_EXPONENT_BOUND[dtype] / max_alpha)))


def far_field_exponent(dtype: torch.dtype) -> float:
    """T: where `alpha * (i - j) >= T`, the decayed score `s * exp(-alpha (i - j))` is 0 to `dtype`'s precision.

    Replacing it by 0 moves each logit by at most `|s| e^{-T}`, so the output by at most
    `(exp(2 |s|_max e^{-T}) - 1) * max |v|` (tests/test_las_attention.py checks this bound).
    """
    return math.log(1.0 / torch.finfo(dtype).eps) + _FAR_FIELD_MARGIN


def near_key_count(alpha: float, dtype: torch.dtype) -> int | None:
    """How many keys before and including the query a head computes exactly (`None`: all; alpha = 0)."""
    # At least the diagonal: a rate so large that the quotient rounds to 0 still leaves the query's own key.
    return max(1, math.ceil(far_field_exponent(dtype) / alpha)) if alpha > 0.0 else None


def _sdpa_tile_elements(device: torch.device) -> int:
    """The most query elements (batch x heads x length x head_dim) the masked sdpa kernel handles at once: 8 MiB of
    float32 on CPU, where larger tiles fall out of cache; no limit that matters on a GPU."""
    return 2**21 if device.type == "cpu" else 2**30


def _needs_block_mask(keep: torch.Tensor | None, pair_keep: torch.Tensor | None) -> bool:
    """Whether a causal SDPA call needs a mask: pair masks, and key masks other than right padding (which causality
    already hides). Under torch.compile / torch.export a key mask is always applied: telling right padding apart
    would read the mask's values (a data-dependent guard)."""
    if pair_keep is not None:
        return True
    return keep is not None and (torch.compiler.is_compiling() or not _is_right_padding(keep))


def _is_right_padding(keep: torch.Tensor) -> bool:
    """Whether every row of a `(batch, length)` keep-mask is a run of real positions followed only by padding."""
    positions = torch.arange(keep.shape[-1], device=keep.device)
    return bool((keep == (positions < keep.sum(-1, keepdim=True))).all())


def _sdpa_las_kernel(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    keep: torch.Tensor | None,
    dropout: float,
    query_block_size: int,
    query_start: int = 0,
    pair_keep: torch.Tensor | None = None,
    max_alpha: float | None = None,
    smoothing: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Causal softmax attention with the LaS decay on SDPA kernels, on `value` smoothed by `smoothing`
    (`(pool_size, left)` of `smooth_along`; `None`: `value` is used as it is).

    Queries are positions `query_start ..` of the keys (a KV-cache step when > 0); `pair_keep`, `(batch, 1, queries,
    keys)`, masks (query, key) pairs as well (LaS-chunk steps). `max_alpha`, a python float at least `alphas.max()`,
    spares reading the alphas on the host (`torch.compile(fullgraph=True)` sees no data-dependent value then).
    Padding: in the causal case a real query never sees a later position, so right padding needs no mask (padded
    values were zeroed before smoothing, padded outputs are zeroed by the caller). Left padding, pair masks and
    attention dropout run `_sdpa_las_kernel_masked` (rescaled SDPA calls with a boolean mask per block).
    """
    if max_alpha is None:
        max_alpha = float(alphas.max()) if alphas.numel() else 0.0
    needs_mask = _needs_block_mask(keep, pair_keep)
    length, total_keys = query.shape[-2], key.shape[-2]
    if max_alpha == 0.0 and not needs_mask and (smoothing is None or dropout > 0.0):
        value = _smooth_values(value, smoothing)
        # Plain causal softmax attention (softmax models, global heads only): SDPA itself, nothing added.
        if query_start == 0:
            return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, is_causal=True)
        # Queries at the end of the keys: the causal mask aligned to the lower right.
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=causal_lower_right(length, total_keys), dropout_p=dropout
        )
    ops = None if needs_mask or dropout > 0.0 else _attention_part_ops(query.device, query.dtype)
    if ops is None or query.shape[-1] != value.shape[-1]:
        return _sdpa_las_kernel_masked(
            query,
            key,
            _smooth_values(value, smoothing),
            alphas,
            keep if needs_mask else None,
            dropout,
            query_block_size,
            query_start,
            pair_keep,
            max_alpha=max_alpha,
        )
    groups = _head_groups(alphas, max_alpha, query.dtype, query_block_size, total_keys)
    return _CausalLaSAttention.apply(query, key, value, alphas, groups, query_start, ops, smoothing, query_block_size)


# -- the attention kernels that return their log-sum-exp --------------------------------------------------------------


class _PartOps(NamedTuple):
    """Attention on one part of the keys: `forward(q, k, v, is_causal) -> (out, lse)` and
    `backward(grad_out, q, k, v, out, lse, is_causal) -> (dq, dk, dv)`, `lse` in float32 (float64 for float64)."""

    name: str
    forward: Callable
    backward: Callable


def _cpu_part_ops() -> _PartOps:
    forward_op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    backward_op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward
    return _PartOps(
        "aten._scaled_dot_product_flash_attention_for_cpu",
        lambda q, k, v, causal: forward_op(q, k, v, 0.0, causal),
        lambda g, q, k, v, o, lse, causal: backward_op(g, q, k, v, o, lse, 0.0, causal),
    )


def _cuda_flash_part_ops() -> _PartOps:
    forward_op = torch.ops.aten._scaled_dot_product_flash_attention
    backward_op = torch.ops.aten._scaled_dot_product_flash_attention_backward

    def forward(q, k, v, causal):
        out, lse = forward_op(q, k, v, 0.0, causal, False)[:2]
        return out, lse

    def backward(g, q, k, v, o, lse, causal):
        empty = torch.empty(0, dtype=torch.int32, device=q.device)  # cu_seqlens: not a packed batch
        rng = torch.empty(2, dtype=torch.int64, device=q.device)  # philox state: unused without dropout
        return backward_op(g, q, k, v, o, lse, empty, empty, q.shape[-2], k.shape[-2], 0.0, causal, rng, rng)

    return _PartOps("aten._scaled_dot_product_flash_attention", forward, backward)


def _cuda_efficient_part_ops() -> _PartOps:
    forward_op = torch.ops.aten._scaled_dot_product_efficient_attention
    backward_op = torch.ops.aten._scaled_dot_product_efficient_attention_backward

    def forward(q, k, v, causal):
        out, lse = forward_op(q, k, v, None, True, 0.0, causal)[:2]
        return out, lse[..., : q.shape[-2]]  # the kernel pads the log-sum-exp to a multiple of 32 rows

    def backward(g, q, k, v, o, lse, causal):
        padded = F.pad(lse, (0, -q.shape[-2] % 32))
        seed = torch.zeros((), dtype=torch.int64, device=q.device)
        grads = backward_op(g, q, k, v, None, o, padded, seed, seed, 0.0, [True, True, True, False], causal)
        return grads[:3]

    return _PartOps("aten._scaled_dot_product_efficient_attention", forward, backward)


#: The `torch.ops.aten` schemas the part kernels were written against (torch 2.13.0); checked at import.
_EXPECTED_SCHEMAS = {
    "_scaled_dot_product_flash_attention_for_cpu": "(Tensor query, Tensor key, Tensor value, float dropout_p=0., "
    "bool is_causal=False, *, Tensor? attn_mask=None, float? scale=None) -> (Tensor output, Tensor logsumexp)",
    "_scaled_dot_product_flash_attention_for_cpu_backward": "(Tensor grad_out, Tensor query, Tensor key, "
    "Tensor value, Tensor out, Tensor logsumexp, float dropout_p, bool is_causal, *, Tensor? attn_mask=None, "
    "float? scale=None) -> (Tensor grad_query, Tensor grad_key, Tensor grad_value)",
    "_scaled_dot_product_flash_attention": "(Tensor query, Tensor key, Tensor value, float dropout_p=0., "
    "bool is_causal=False, bool return_debug_mask=False, *, float? scale=None) -> (Tensor output, "
    "Tensor logsumexp, Tensor cum_seq_q, Tensor cum_seq_k, SymInt max_q, SymInt max_k, Tensor rng_state, "
    "Tensor unused, Tensor debug_attn_mask)",
    "_scaled_dot_product_flash_attention_backward": "(Tensor grad_out, Tensor query, Tensor key, Tensor value, "
    "Tensor out, Tensor logsumexp, Tensor cum_seq_q, Tensor cum_seq_k, SymInt max_q, SymInt max_k, "
    "float dropout_p, bool is_causal, Tensor philox_seed, Tensor philox_offset, *, float? scale=None) -> "
    "(Tensor grad_query, Tensor grad_key, Tensor grad_value)",
    "_scaled_dot_product_efficient_attention": "(Tensor query, Tensor key, Tensor value, Tensor? attn_bias, "
    "bool compute_log_sumexp, float dropout_p=0., bool is_causal=False, *, float? scale=None) -> "
    "(Tensor output, Tensor log_sumexp, Tensor philox_seed, Tensor philox_offset)",
    "_scaled_dot_product_efficient_attention_backward": "(Tensor grad_out_, Tensor query, Tensor key, "
    "Tensor value, Tensor attn_bias, Tensor out, Tensor logsumexp, Tensor philox_seed, Tensor philox_offset, "
    "float dropout_p, bool[4] grad_input_mask, bool is_causal=False, *, float? scale=None) -> "
    "(Tensor, Tensor, Tensor, Tensor)",
}


def _schemas_match(*names: str) -> bool:
    """Whether these `torch.ops.aten` operators exist with the schemas the part kernels call them with."""
    for name in names:
        try:
            schema = str(getattr(torch.ops.aten, name).default._schema)
        except (AttributeError, RuntimeError):
            return False
        if schema.removeprefix(f"aten::{name}") != _EXPECTED_SCHEMAS[name]:
            return False
    return True


_SCHEMAS_OK = {
    "cpu": _schemas_match(
        "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention_for_cpu_backward"
    ),
    "cuda_flash": _schemas_match(
        "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_backward"
    ),
    "cuda_efficient": _schemas_match(
        "_scaled_dot_product_efficient_attention", "_scaled_dot_product_efficient_attention_backward"
    ),
}
if not _SCHEMAS_OK["cpu"]:
    logger.warning(
        f"LaS sdpa: torch {torch.__version__}'s aten._scaled_dot_product_flash_attention_for_cpu(_backward) differs "
        "from the torch 2.13 schema this kernel was written for; LaS sdpa on CPU uses its slower per-block kernel."
    )


def _part_ops_candidates(device: torch.device, dtype: torch.dtype) -> list[Callable[[], _PartOps]]:
    """The part kernels that exist for this device and dtype (their schemas match), best first."""
    if device.type == "cpu":
        return [_cpu_part_ops] if _SCHEMAS_OK["cpu"] else []
    if device.type == "cuda":
        flash = [_cuda_flash_part_ops] if _SCHEMAS_OK["cuda_flash"] and dtype != torch.float32 else []
        return flash + ([_cuda_efficient_part_ops] if _SCHEMAS_OK["cuda_efficient"] else [])
    return []


#: (device, dtype) -> the position in `_part_ops_candidates` of the part kernels that passed their check, or None.
_PART_OPS_CHECKED: dict[tuple[torch.device, torch.dtype], int | None] = {}


@torch._dynamo.assume_constant_result
def _checked_part_ops_index(device: torch.device, dtype: torch.dtype) -> int | None:
    """Which part kernels passed their check on this device and dtype (checked once, then remembered).

    Under `torch.compile` dynamo runs this function instead of tracing it (`assume_constant_result`): the check's own
    small attention is eager work, not part of the model's graph.
    """
    key = (device, dtype)
    if key not in _PART_OPS_CHECKED:
        # In a thread of its own: tracing modes (torch.export's fake tensors and proxies) and grad mode are
        # thread-local, so the check computes real numbers whatever the caller is doing.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            index = pool.submit(_first_agreeing_part_ops, device, dtype).result()
        if index is None:
            logger.warning(
                f"LaS sdpa: no log-sum-exp attention kernel of torch {torch.__version__} passed its check on "
                f"{device.type} ({dtype}); LaS sdpa runs its slower per-block kernel there."
            )
        _PART_OPS_CHECKED[key] = index
    return _PART_OPS_CHECKED[key]


def _first_agreeing_part_ops(device: torch.device, dtype: torch.dtype) -> int | None:
    candidates = _part_ops_candidates(device, dtype)
    return next((i for i, make in enumerate(candidates) if _part_ops_agree_with_sdpa(make(), device, dtype)), None)


def _attention_part_ops(device: torch.device, dtype: torch.dtype) -> _PartOps | None:
    """The part kernels for this device and dtype, checked once against plain SDPA (forward and gradients of a small
    causal attention split into a past and a diagonal part); `None` (with one warning) where they are missing or
    disagree, and the caller runs `_sdpa_las_kernel_masked`, never a wrong result."""
    index = _checked_part_ops_index(device, dtype)
    return None if index is None else _part_ops_candidates(device, dtype)[index]()


def _part_ops_agree_with_sdpa(ops: _PartOps, device: torch.device, dtype: torch.dtype) -> bool:
    generator = torch.Generator().manual_seed(0)
    query, key, value, upstream = (
        torch.randn(1, 2, 40, 16, generator=generator).to(device=device, dtype=dtype) for _ in range(4)
    )
    try:
        with torch.enable_grad():
            leaves = [t.clone().requires_grad_() for t in (query, key, value)]
            expected = F.scaled_dot_product_attention(
                leaves[0][:, :, 24:], *leaves[1:], attn_mask=causal_lower_right(16, 40)
            )
            expected.backward(upstream[:, :, 24:])
        with torch.no_grad():
            past = ops.forward(query[:, :, 24:], key[:, :, :24], value[:, :, :24], False)
            diagonal = ops.forward(query[:, :, 24:], key[:, :, 24:], value[:, :, 24:], True)
            output, lse = _merge_parts([past, diagonal], dtype)
            output = output.to(dtype)
            grads_past = ops.backward(
                upstream[:, :, 24:], query[:, :, 24:], key[:, :, :24], value[:, :, :24], output, lse, False
            )
            grads_diagonal = ops.backward(
                upstream[:, :, 24:], query[:, :, 24:], key[:, :, 24:], value[:, :, 24:], output, lse, True
            )
        got = [
            output,
            grads_past[0] + grads_diagonal[0],
            torch.cat([grads_past[1], grads_diagonal[1]], -2),
            torch.cat([grads_past[2], grads_diagonal[2]], -2),
        ]
        wanted = [expected, leaves[0].grad[:, :, 24:], leaves[1].grad, leaves[2].grad]
    except (RuntimeError, TypeError, ValueError, IndexError) as error:
        logger.info(f"LaS sdpa: {ops.name} failed its check on {device.type} ({dtype}): {error}")
        return False
    tolerance = {torch.float64: 1e-10, torch.float32: 1e-4}.get(dtype, 5e-2)
    return all(
        a.shape == b.shape and bool(((a.double() - b.double()).abs().max() <= tolerance)) for a, b in zip(got, wanted)
    )


def _merge_parts(parts: list[tuple[torch.Tensor, torch.Tensor]], dtype: torch.dtype):
    """Attention outputs over disjoint key sets, `(out, lse)` each, merged through their log-sum-exp: the attention
    over all of them. Broadcasting is allowed (the far field is one row per block); the result is in at least
    float32 (its log-sum-exp as the parts')."""
    compute = torch.promote_types(dtype, torch.float32)
    if len(parts) == 1:
        return parts[0][0].to(compute), parts[0][1]
    lse = parts[0][1]
    for _, part_lse in parts[1:]:
        lse = torch.logaddexp(lse, part_lse)
    out = None
    for part_out, part_lse in parts:
        term = part_out.to(compute) * torch.exp(part_lse - lse).unsqueeze(-1).to(compute)
        out = term if out is None else out + term
    return out, lse


# -- head groups ------------------------------------------------------------------------------------------------------


class _HeadGroup(NamedTuple):
    """Heads that run one kernel together: `heads` (a slice of consecutive heads, or a list), the kernel
    ("blocks" or "band"), queries per block (blocks), and `near`, the keys a query computes exactly before the far
    field starts (`None`: every key; the band kernel's band width)."""

    heads: slice | tuple[int, ...]
    kernel: str
    block: int
    near: int | None


def _head_groups(
    alphas: torch.Tensor, max_alpha: float, dtype: torch.dtype, query_block_size: int, total_keys: int
) -> tuple[_HeadGroup, ...]:
    """Split the heads by decay: heads whose near band is a few keys run the band kernel, the others the block kernel
    with blocks short enough for their largest alpha.

    With only `max_alpha` known (inside `torch.compile`, or when it shows that no head needs the band kernel), every
    head runs the block kernel: the alphas are not read on the host then.
    """
    everything = slice(0, alphas.shape[0])
    one_group = (_HeadGroup(everything, "blocks", sdpa_query_block_size(max_alpha, dtype, query_block_size), None),)
    no_band_needed = not _needs_band(max_alpha, dtype, query_block_size, total_keys)
    if no_band_needed and alphas.device.type != "cpu" or torch.compiler.is_compiling():
        return one_group
    values = alphas.tolist()
    banded = [h for h, alpha in enumerate(values) if _needs_band(alpha, dtype, query_block_size, total_keys)]
    blocked = [h for h in range(len(values)) if h not in banded]
    groups = []
    for heads, kernel in ((blocked, "blocks"), (banded, "band")):
        if not heads:
            continue
        nears = [near_key_count(values[h], dtype) for h in heads]
        near = None if None in nears else max(nears)
        block = sdpa_query_block_size(max(values[h] for h in heads), dtype, query_block_size)
        consecutive = heads == list(range(heads[0], heads[-1] + 1))
        groups.append(_HeadGroup(slice(heads[0], heads[-1] + 1) if consecutive else tuple(heads), kernel, block, near))
    return tuple(groups)


def _needs_band(alpha: float, dtype: torch.dtype, query_block_size: int, total_keys: int) -> bool:
    """Whether a head runs the band kernel: where its diagonal tile would be shorter than `_MIN_SDPA_BLOCK` queries
    and the sequence longer than one tile (one SDPA call is cheaper than the band's passes on short sequences)."""
    if alpha <= 0.0:
        return False
    block = sdpa_query_block_size(alpha, dtype, query_block_size)
    return block < min(_MIN_SDPA_BLOCK, total_keys)


def _take_heads(tensor: torch.Tensor, heads: slice | tuple[int, ...]) -> torch.Tensor:
    if isinstance(heads, slice):
        return tensor[:, heads]
    return tensor[:, list(heads)]


def _put_heads(target: torch.Tensor, heads: slice | tuple[int, ...], source: torch.Tensor) -> None:
    if isinstance(heads, slice):
        target[:, heads] = source
    else:
        target[:, list(heads)] = source


class _CausalLaSAttention(torch.autograd.Function):
    """Causal LaS attention on the part kernels, smoothing included: saves q, k, the raw values, the output and the
    log-sum-exp, and recomputes the smoothed values and every part in backward (LaS's training memory is then SDPA's:
    the output and the log-sum-exp beyond the inputs)."""

    @staticmethod
    def forward(ctx, query, key, value, alphas, groups, query_start, ops, smoothing, key_tile):
        rates = alphas.to(device=query.device, dtype=torch.promote_types(query.dtype, torch.float32))
        smoothed = _smooth_values(value, smoothing)
        output, lse = _run_groups(groups, (query, key, smoothed), rates, query_start, ops, key_tile, None, False)
        ctx.save_for_backward(query, key, value, output, lse, rates)
        ctx.groups, ctx.query_start, ctx.ops = groups, query_start, ops
        ctx.smoothing, ctx.key_tile = smoothing, key_tile
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        query, key, value, output, lse, rates = ctx.saved_tensors
        grads = _run_groups(
            ctx.groups,
            (query, key, value, output, lse, grad_output),
            rates,
            ctx.query_start,
            ctx.ops,
            ctx.key_tile,
            ctx.smoothing,
            backward=True,
        )
        return *(g.to(t.dtype) for g, t in zip(grads, (query, key, value))), *([None] * 6)


def _smooth_values(value: torch.Tensor, smoothing: tuple[int, int] | None) -> torch.Tensor:
    if smoothing is None:
        return value
    pool_size, left = smoothing
    return smooth_along(value, dim=-2, pool_size=pool_size, left=left)


def _run_groups(groups, tensors, rates, query_start, ops, key_tile, smoothing, backward: bool):
    """Every head group's kernel (forward, on smoothed values: `(output, lse)`; backward, on raw values: the three
    gradients), assembled over heads."""
    heads = tensors[0].shape[1]
    results = None
    for group in groups:
        whole = group.heads == slice(0, heads)
        taken = tensors if whole else [_take_heads(t, group.heads) for t in tensors]
        group_rates = rates if whole else _take_heads(rates[None], group.heads)[0]
        arguments = (group_rates, group, query_start, ops, key_tile)
        if not backward:
            pieces = _group_kernel(group, False)(*taken, *arguments)
        elif group.kernel == "blocks":
            pieces = _blocks_backward(*taken, *arguments, smoothing)
        else:
            query, key, value, *rest = taken
            pieces = list(_band_backward(query, key, _smooth_values(value, smoothing), *rest, *arguments))
            pieces[2] = _smoothing_transpose(pieces[2], smoothing)
        if whole:
            return tuple(pieces)
        if results is None:
            results = [
                torch.empty(t.shape[:1] + (heads,) + t.shape[2:], dtype=t.dtype, device=t.device) for t in pieces
            ]
        for target, piece in zip(results, pieces):
            _put_heads(target, group.heads, piece)
    return tuple(results)


def _group_kernel(group, backward: bool) -> Callable:
    if group.kernel == "blocks":
        return _blocks_backward if backward else _blocks_forward
    return _band_backward if backward else _band_forward


# -- the block kernel -------------------------------------------------------------------------------------------------


class _Block(NamedTuple):
    start: int  # the block's queries, as query rows
    stop: int
    first: int  # ... and as key positions
    last: int
    near_start: int  # p0: keys before it are the far field


def _blocks(length: int, query_start: int, group: _HeadGroup) -> list[_Block]:
    blocks = []
    for start in range(0, length, group.block):
        stop = min(start + group.block, length)
        first, last = query_start + start, query_start + stop
        # Key j < p0 is far for every query i >= first of the block: first - j >= near.
        near_start = 0 if group.near is None else max(0, first - group.near + 1)
        blocks.append(_Block(start, stop, first, last, near_start))
    return blocks


def _past_tiles(block: _Block, key_tile: int) -> list[tuple[int, int]]:
    """The near past [p0, i0) in tiles of at most `key_tile` keys: each tile's backward gives gradients of its own
    size, so backward holds O(tile) temporaries, not O(L)."""
    return [(s, min(s + key_tile, block.first)) for s in range(block.near_start, block.first, key_tile)]


def _scales(rates: torch.Tensor, offsets_from: int, offsets_to: int, sign: float, dtype: torch.dtype) -> torch.Tensor:
    """`(heads, n, 1)` scales e^{sign * a * o} for offsets o in [offsets_from, offsets_to), exponents clamped below at
    the dtype's underflow (denormals are slow on CPU and change no score by more than the dtype can represent)."""
    offsets = torch.arange(offsets_from, offsets_to, device=rates.device).to(rates.dtype)
    exponent = (sign * rates[:, None, None]) * offsets[:, None]
    return torch.exp(exponent.clamp(min=math.log(torch.finfo(dtype).tiny))).to(dtype)


def _blocks_forward(query, key, value, rates, group, query_start, ops, key_tile):
    blocks = _blocks(query.shape[-2], query_start, group)
    output = lse = None
    far_sum, far_end = None, 0  # sum of the values of keys 0 .. far_end - 1, in at least float32
    for block in blocks:
        size = block.last - block.first
        query_scale = _scales(rates, 0, size, -1.0, query.dtype)  # e^{-a (i - i0)}
        block_query = query[:, :, block.start : block.stop] * query_scale
        diagonal = slice(block.first, block.last)
        block_key = key[:, :, diagonal] * _scales(rates, 0, size, 1.0, key.dtype)  # e^{a (j - i0)}
        block_output, block_lse = ops.forward(block_query, block_key, value[:, :, diagonal], True)
        for tile_start, tile_stop in _past_tiles(block, key_tile):
            tile_key = key[:, :, tile_start:tile_stop] * _scales(
                rates, tile_start - block.first, tile_stop - block.first, 1.0, key.dtype
            )
            part = ops.forward(block_query, tile_key, value[:, :, tile_start:tile_stop], False)
            block_output, block_lse = _merge_parts([(block_output, block_lse), part], query.dtype)
        if block.near_start > 0:
            far_sum = _advance_sum(far_sum, value, far_end, block.near_start)
            far_end = block.near_start
            far_lse = torch.full((1,), math.log(far_end), dtype=block_lse.dtype, device=query.device)
            block_output, block_lse = _merge_parts(
                [(block_output, block_lse), (far_sum[:, :, None] / far_end, far_lse)], query.dtype
            )
        if len(blocks) == 1:
            return block_output.to(query.dtype), block_lse
        if output is None:
            output = query.new_empty(query.shape[:-1] + value.shape[-1:])
            lse = block_lse.new_empty(query.shape[:-1])
        output[:, :, block.start : block.stop] = block_output
        lse[:, :, block.start : block.stop] = block_lse
    return output, lse


def _advance_sum(total: torch.Tensor | None, value: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """`total` (the sum of the values of keys before `start`) plus those of keys `start .. stop - 1`."""
    compute = torch.promote_types(value.dtype, torch.float32)
    added = value[:, :, start:stop].sum(-2, dtype=compute)
    return added if total is None else total + added


def _blocks_backward(query, key, value, output, lse, grad_output, rates, group, query_start, ops, key_tile, smoothing):
    """Key-major: per tile of keys, every block of queries that sees it, so that the tile's key and value gradients
    are complete when the loop leaves it. `value` is raw: the tile's smoothed values are recomputed (with a halo of
    P - 1 rows) and its value gradient is carried back through the smoothing into the raw rows. Backward then holds
    the three gradients and O(tile) temporaries, never a smoothed copy of V or a gradient in smoothed space."""
    compute = torch.promote_types(query.dtype, torch.float32)
    blocks = _blocks(query.shape[-2], query_start, group)
    if len(blocks) == 1 and blocks[0].first == blocks[0].near_start == 0:
        # One block and no past (short sequences): the diagonal tile's gradients are the gradients.
        size = query.shape[-2]
        query_scale, key_scale = _scales(rates, 0, size, -1.0, query.dtype), _scales(rates, 0, size, 1.0, key.dtype)
        smoothed = _smooth_values(value, smoothing)
        grads = ops.backward(grad_output, query * query_scale, key * key_scale, smoothed, output, lse, True)
        del smoothed
        return grads[0] * query_scale, grads[1] * key_scale, _smoothing_transpose(grads[2], smoothing)
    grad_query = torch.zeros(query.shape, dtype=compute, device=query.device)
    grad_key = torch.empty(key.shape, dtype=compute, device=key.device)
    grad_value = torch.zeros(value.shape, dtype=compute, device=value.device)
    # Far field: key j gets sum_i dO_i e^{-lse_i} over the queries i of every block with p0 > j (suffix sums).
    far = [b for b in blocks if b.near_start > 0]
    far_suffix, running = [], None
    for block in reversed(far):
        rows = slice(block.start, block.stop)
        weighted = grad_output[:, :, rows].to(compute) * torch.exp(-lse[:, :, rows]).unsqueeze(-1).to(compute)
        running = weighted.sum(-2) if running is None else running + weighted.sum(-2)
        far_suffix.append(running)
    far_suffix.reverse()
    for tile_start, tile_stop in _key_tiles(blocks, query_start, key_tile):
        tile_value = _smoothed_rows(value, smoothing, tile_start, tile_stop)
        tile_grad_key = torch.zeros(
            key.shape[:2] + (tile_stop - tile_start,) + key.shape[3:], dtype=compute, device=key.device
        )
        tile_grad_value = torch.zeros(tile_value.shape, dtype=compute, device=value.device)
        for block in blocks:
            if block.last <= tile_start:
                continue
            parts = []
            if tile_start <= block.first and block.last <= tile_stop:
                parts.append((block.first, block.last, True))
            past_start, past_stop = max(tile_start, block.near_start), min(tile_stop, block.first)
            if past_start < past_stop:
                parts.append((past_start, past_stop, False))
            if not parts:
                continue
            rows = slice(block.start, block.stop)
            query_scale = _scales(rates, 0, block.stop - block.start, -1.0, query.dtype)
            block_query = query[:, :, rows] * query_scale
            for start, stop, causal in parts:
                key_scale = _scales(rates, start - block.first, stop - block.first, 1.0, key.dtype)
                here = slice(start - tile_start, stop - tile_start)
                grads = ops.backward(
                    grad_output[:, :, rows],
                    block_query,
                    key[:, :, start:stop] * key_scale,
                    tile_value[:, :, here],
                    output[:, :, rows],
                    lse[:, :, rows],
                    causal,
                )
                grad_query[:, :, rows].addcmul_(grads[0], query_scale)
                tile_grad_key[:, :, here].addcmul_(grads[1], key_scale)
                tile_grad_value[:, :, here] += grads[2]
        for block, suffix in zip(far, far_suffix):
            # the far keys of this block, minus those of the previous far block (counted in its own suffix)
            previous = far[far.index(block) - 1].near_start if far.index(block) > 0 else 0
            start, stop = max(tile_start, previous), min(tile_stop, block.near_start)
            if start < stop:
                tile_grad_value[:, :, start - tile_start : stop - tile_start] += suffix[:, :, None]
        grad_key[:, :, tile_start:tile_stop] = tile_grad_key
        _add_smoothing_transpose(grad_value, tile_start, tile_grad_value, smoothing)
    return grad_query, grad_key, grad_value


def _key_tiles(blocks: list[_Block], query_start: int, key_tile: int) -> list[tuple[int, int]]:
    """Tiles of at most `key_tile` keys (at least one block) covering every key, each block's diagonal inside one."""
    tiles = [(s, min(s + key_tile, query_start)) for s in range(0, query_start, key_tile)]
    start = stop = query_start
    for block in blocks:
        if block.last - start > key_tile and stop > start:
            tiles.append((start, stop))
            start = stop
        stop = block.last
    tiles.append((start, stop))
    return tiles


def _smoothed_rows(value: torch.Tensor, smoothing: tuple[int, int] | None, start: int, stop: int) -> torch.Tensor:
    """Rows `start .. stop - 1` of `smooth_along(value, -2, *smoothing)`, from the raw rows they need."""
    if smoothing is None:
        return value[:, :, start:stop]
    pool_size, left = smoothing
    low, high = start - left, stop - left + pool_size - 1  # raw rows [low, high) (zeros outside the sequence)
    total = value.shape[-2]
    rows = F.pad(value[:, :, max(low, 0) : min(high, total)], (0, 0, max(0, -low), max(0, high - total)))
    return smooth_along(rows, dim=-2, pool_size=pool_size, left=left)[:, :, left : left + stop - start]


def _smoothing_transpose(grad: torch.Tensor, smoothing: tuple[int, int] | None) -> torch.Tensor:
    if smoothing is None:
        return grad
    pool_size, left = smoothing
    return smooth_along(grad, dim=-2, pool_size=pool_size, left=pool_size - 1 - left)


def _add_smoothing_transpose(
    target: torch.Tensor, start: int, piece: torch.Tensor, smoothing: tuple[int, int] | None
) -> None:
    """Add the gradient `piece` of smoothed rows `start ..` to the raw rows it comes from (`target`): row t of the
    smoothed values averages raw rows t - left .. t - left + P - 1."""
    if smoothing is None:
        target[:, :, start : start + piece.shape[-2]] += piece
        return
    pool_size, left = smoothing
    # contribution[r] = mean(piece[r - P + 1 .. r]) goes to raw row start - left + r
    contribution = smooth_along(F.pad(piece, (0, 0, pool_size - 1, 0)), dim=-2, pool_size=pool_size, left=0)
    origin = start - left
    low, high = max(0, -origin), min(contribution.shape[-2], target.shape[-2] - origin)
    target[:, :, origin + low : origin + high] += contribution[:, :, low:high]


# -- the band kernel --------------------------------------------------------------------------------------------------
#
# For heads with a large decay: the `near` keys before and at each query (offsets 0 .. W-1) are computed directly,
# one pass over the sequence per offset; every older key is far field (weight e^0 = 1): a running sum of values.
# Key j of query row t is key position query_start + t - offset; rows t >= 1 - cut have far keys 0 .. t + cut - 1,
# where cut = query_start - W + 1.


def _band_logits(query, key, rates, width, query_start):
    """`(batch, heads, queries, width)` decayed scaled scores of offsets 0 .. width - 1 (-inf before key 0), and the
    `(heads, width)` factors scale * e^{-a offset}."""
    length = query.shape[-2]
    factors = query.shape[-1] ** -0.5 * torch.exp(-rates[:, None] * torch.arange(width, device=query.device))
    logits = torch.full(query.shape[:-1] + (width,), float("-inf"), dtype=query.dtype, device=query.device)
    for offset in range(width):
        low = max(0, offset - query_start)  # the first row whose key at this offset exists
        keys = key[:, :, query_start + low - offset : query_start + length - offset]
        logits[:, :, low:, offset] = (query[:, :, low:] * keys).sum(-1) * factors[:, offset, None]
    return logits, factors


def _band_forward(query, key, value, rates, group, query_start, ops, key_tile):
    compute = torch.promote_types(query.dtype, torch.float32)
    dtype = query.dtype
    query, key, value = (t.to(compute) for t in (query, key, value))
    length = query.shape[-2]
    width = min(group.near, query_start + length)
    logits, _ = _band_logits(query, key, rates, width, query_start)
    cut = query_start - width + 1
    positions = torch.arange(query_start, query_start + length, device=query.device)
    count = (positions - width + 1).clamp(min=0).to(compute)  # far keys of each row
    top = logits.amax(-1)
    top = torch.where(count > 0, top.clamp(min=0.0), top)  # the far keys' logit is 0
    weights = torch.exp(logits - top[..., None])
    total = weights.sum(-1) + count * torch.exp(-top)
    output = torch.zeros(query.shape[:-1] + value.shape[-1:], dtype=compute, device=query.device)
    first_far = max(0, 1 - cut)
    if first_far < length:
        prefix = value[:, :, : length + cut - 1].cumsum(-2)
        output[:, :, first_far:] = prefix[:, :, first_far + cut - 1 :] * torch.exp(-top[:, :, first_far:, None])
    for offset in range(width):
        low = max(0, offset - query_start)
        values = value[:, :, query_start + low - offset : query_start + length - offset]
        output[:, :, low:] += weights[:, :, low:, offset, None] * values
    output /= total[..., None]
    return output.to(dtype), top + torch.log(total)


def _band_backward(query, key, value, output, lse, grad_output, rates, group, query_start, ops, key_tile):
    compute = torch.promote_types(query.dtype, torch.float32)
    query, key, value, output, grad_output = (t.to(compute) for t in (query, key, value, output, grad_output))
    length = query.shape[-2]
    width = min(group.near, query_start + length)
    logits, factors = _band_logits(query, key, rates, width, query_start)
    probs = torch.exp(logits - lse[..., None])
    row_term = (grad_output * output).sum(-1, keepdim=True)
    grad_query, grad_key, grad_value = torch.zeros_like(query), torch.zeros_like(key), torch.zeros_like(value)
    for offset in range(width):
        low = max(0, offset - query_start)
        keys = slice(query_start + low - offset, query_start + length - offset)
        prob = probs[:, :, low:, offset, None]
        grad_value[:, :, keys] += prob * grad_output[:, :, low:]
        grad_logit = prob * (
            (grad_output[:, :, low:] * value[:, :, keys]).sum(-1, keepdim=True) - row_term[:, :, low:]
        )
        grad_score = grad_logit * factors[:, offset, None, None]
        grad_query[:, :, low:] += grad_score * key[:, :, keys]
        grad_key[:, :, keys] += grad_score * query[:, :, low:]
    # Far keys: key j gets sum over the rows t >= j - cut + 1 of dO_t e^{-lse_t} (a suffix sum over rows).
    cut = query_start - width + 1
    if 1 - cut < length:
        weighted = grad_output * torch.exp(-lse)[..., None]
        suffix = weighted.flip(-2).cumsum(-2).flip(-2)
        if cut > 0:
            grad_value[:, :, :cut] += suffix[:, :, :1]
        begin, end = max(cut, 0), length + cut - 1
        if end > begin:
            grad_value[:, :, begin:end] += suffix[:, :, begin - cut + 1 :]
    return grad_query, grad_key, grad_value


def _sdpa_las_kernel_masked(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    keep: torch.Tensor | None,
    dropout: float,
    query_block_size: int,
    query_start: int = 0,
    pair_keep: torch.Tensor | None = None,
    max_alpha: float | None = None,
) -> torch.Tensor:
    """The per-block kernel for what the part kernels do not cover: a key mask (`keep`, e.g. left padding), a pair
    mask, attention dropout, or no checked log-sum-exp kernel on this device.

    Per block of queries [i0, i1), one SDPA call over keys 0 .. i1 - 1 with q_i e^{-a (i - i0)} and k_j e^{a (j - i0)}
    and a boolean mask (causal, lower right, and the given masks); autograd differentiates it, and saved-tensor hooks
    recompute the rescaled copies and the mask in backward instead of keeping them.
    """
    batch, heads, length, _ = query.shape
    total_keys = key.shape[-2]
    if max_alpha is None:  # read on the host only where the caller does not know it (see `_sdpa_las_kernel`)
        max_alpha = float(alphas.max()) if alphas.numel() else 0.0
    block = sdpa_query_block_size(max_alpha, query.dtype, query_block_size)
    needs_mask = keep is not None or pair_keep is not None
    batch_step = max(1, _sdpa_tile_elements(query.device) // (heads * total_keys * query.shape[-1]))
    if batch_step < batch:
        # Long batches (LaS-chunk: batch x chunks) in tiles, as the eager kernel does: the rescaled copies of a tile
        # stay in cache, so time per token does not grow with the number of chunks. `split`: its backward is a cat.
        def split(tensor: torch.Tensor | None) -> list:
            return [None] * math.ceil(batch / batch_step) if tensor is None else tensor.split(batch_step)

        tiles = zip(*(split(t) for t in (query, key, value, keep, pair_keep)))
        return torch.cat(
            [
                _sdpa_las_kernel_masked(
                    tile_query,
                    tile_key,
                    tile_value,
                    alphas,
                    tile_keep,
                    dropout,
                    query_block_size,
                    query_start,
                    tile_pair_keep,
                    max_alpha,
                )
                for tile_query, tile_key, tile_value, tile_keep, tile_pair_keep in tiles
            ]
        )

    # Scales in float32 at least; exponents clamped below at the dtype's underflow, which spares denormals (slow on
    # CPU) and changes no score by more than the dtype can represent.
    scale_dtype = torch.promote_types(query.dtype, torch.float32)
    rate = alphas.to(device=query.device, dtype=scale_dtype)[:, None, None]  # (heads, 1, 1)
    lowest_exponent = math.log(torch.finfo(query.dtype).tiny)
    positions = torch.arange(total_keys, device=query.device, dtype=scale_dtype)
    outputs = []
    for start in range(0, length, block):
        stop = min(start + block, length)
        first, last = query_start + start, query_start + stop  # the block's queries, as key positions
        offsets = positions[:last] - first  # key j - i0 for keys 0 .. i1 - 1; the block's queries are offsets >= 0
        query_scale = torch.exp(-rate * offsets[first:last, None]).to(query.dtype)  # (heads, block, 1)
        key_scale = torch.exp((rate * offsets[:, None]).clamp(min=lowest_exponent)).to(key.dtype)  # (heads, i1, 1)
        scaled = {
            "query": lambda start=start, stop=stop, scale=query_scale: query[:, :, start:stop] * scale,
            "key": lambda last=last, scale=key_scale: key[:, :, :last] * scale,
        }
        block_query, block_key = scaled["query"](), scaled["key"]()  # (batch, heads, block or i1, head_dim)
        if needs_mask or query.device.type == "cpu":
            # An additive float mask, as SDPA would make it from a boolean one (on CPU it also materialises a
            # lower-right CausalBias): built here, so that backward can recompute it instead of keeping it.
            scaled["mask"] = lambda start=start, stop=stop: _sdpa_block_bias(
                keep if needs_mask else None, pair_keep, query_start, start, stop, query.dtype, query.device
            )
            allowed = scaled["mask"]()
        else:
            allowed = causal_lower_right(stop - start, last)  # FlashAttention's own bottom-right causal mask
        # SDPA keeps its inputs for backward: the rescaled copies and the block's mask, several times what plain SDPA
        # keeps. They are cheap to recompute from q, k and the scales, so backward recomputes them.
        with _recompute_saved(block_query, block_key, allowed, scaled):
            outputs.append(
                F.scaled_dot_product_attention(
                    block_query, block_key, value[:, :, :last], attn_mask=allowed, dropout_p=dropout
                )
            )
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-2)


def _sdpa_alibi_kernel(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    slopes: torch.Tensor,
    keep: torch.Tensor | None,
    dropout: float,
    query_block_size: int,
    query_start: int = 0,
    pair_keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Causal softmax attention with ALiBi's bias `-m_h (i - j)`, as SDPA calls with an additive float mask.

    The bias is not separable into query and key factors inside SDPA's scaled product, so each block of queries gets
    a `(heads, block, keys)` bias (plus the padding and causal mask of `_sdpa_block_bias`), recomputed in backward
    rather than kept. Same arguments and result as `_sdpa_las_kernel`, with the slopes in place of the decay rates.
    """
    length = query.shape[-2]
    needs_mask = _needs_block_mask(keep, pair_keep)
    bias_dtype = torch.promote_types(query.dtype, torch.float32)
    rate = slopes.to(device=query.device, dtype=bias_dtype)[:, None, None]  # (heads, 1, 1)
    outputs = []
    for start in range(0, length, query_block_size):
        stop = min(start + query_block_size, length)
        first, last = query_start + start, query_start + stop

        def block_bias(start: int = start, stop: int = stop, first: int = first, last: int = last) -> torch.Tensor:
            mask = _sdpa_block_bias(
                keep if needs_mask else None, pair_keep, query_start, start, stop, bias_dtype, query.device
            )
            # Future keys are masked by `mask` (-inf); clamping their distance keeps the sum at -inf, never NaN.
            distance = torch.arange(first, last, device=query.device)[:, None] - torch.arange(
                last, device=query.device
            )
            return (mask - rate * distance.clamp(min=0)).to(query.dtype)

        recipes = {
            "query": lambda start=start, stop=stop: query[:, :, start:stop],
            "key": lambda last=last: key[:, :, :last],
            "mask": block_bias,
        }
        block_query, block_key, bias = recipes["query"](), recipes["key"](), block_bias()
        with _recompute_saved(block_query, block_key, bias, recipes):
            outputs.append(
                F.scaled_dot_product_attention(
                    block_query, block_key, value[:, :, :last], attn_mask=bias, dropout_p=dropout
                )
            )
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-2)


def _sdpa_block_bias(
    keep: torch.Tensor | None,
    pair_keep: torch.Tensor | None,
    query_start: int,
    start: int,
    stop: int,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """The additive mask of queries `start .. stop - 1` (key positions `query_start + start ..`) over the keys up to
    the last of them: 0 where visible, -inf elsewhere.

    `(block, keys)` for causality alone; `(batch, 1, block, keys)` with a key mask `keep` or a pair mask
    `pair_keep`. A row that would see no key at all (a padded query) sees every causal key instead, so that no row is
    empty (SDPA gives NaN there); the caller zeroes those outputs.
    """
    first, last = query_start + start, query_start + stop
    causal = torch.arange(last, device=device)[None, :] <= torch.arange(first, last, device=device)[:, None]
    allowed = causal
    if keep is not None or pair_keep is not None:
        allowed = causal[None, None] & keep[:, None, None, :last] if keep is not None else causal[None, None]
        if pair_keep is not None:
            allowed = allowed & pair_keep[:, :, start:stop, :last]
        allowed = allowed | (causal & ~allowed.any(-1, keepdim=True))
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, float("-inf"))


def _recompute_saved(
    block_query: torch.Tensor,
    block_key: torch.Tensor,
    block_bias: torch.Tensor | object,
    recompute: dict[str, Callable[[], torch.Tensor]],
):
    """Saved-tensor hooks that keep SDPA's rescaled query and key and the block's mask as recipes, not copies.

    The three are recognised by storage and shape (SDPA saves its inputs as they are); anything else is kept.
    """
    if torch.compiler.is_compiling():
        # Data pointers do not exist under torch.compile / torch.export (and the compiler plans memory itself).
        return contextlib.nullcontext()
    # Identities only: holding the tensors themselves here would keep them alive for as long as the graph.
    identities = {"query": (block_query.data_ptr(), block_query.shape), "key": (block_key.data_ptr(), block_key.shape)}
    if isinstance(block_bias, torch.Tensor):
        identities["mask"] = (block_bias.data_ptr(), block_bias.shape)

    def pack(tensor: torch.Tensor):
        for name, identity in identities.items():
            if (tensor.data_ptr(), tensor.shape) == identity:
                return name
        return tensor

    def unpack(packed):
        if isinstance(packed, str):
            with torch.no_grad():
                return recompute[packed]()
        return packed

    return torch.autograd.graph.saved_tensors_hooks(pack, unpack)


# -- flex kernel ------------------------------------------------------------------------------------------------------


@functools.cache
def _compiled_flex_attention() -> Callable:
    """flex_attention only avoids materialising L x L when compiled; compile it once per process.

    Lengths stay static: inductor's dynamic-length CPU flex kernels fail to build with a padding mask (torch 2.13), so
    lengths are bucketed instead (`flex_bucket_length`). The batch axis is dynamic (`_mark_batch_dynamic`), so that a
    last partial batch or LaS-chunk's batch x chunks do not compile again: one kernel per length bucket (two with
    batches of 1, which dynamo always specialises).
    """
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=None)


def _mark_batch_dynamic(*tensors: torch.Tensor | None) -> None:
    """Compile the flex kernel for any batch size (axis 0) of these tensors; a batch of 1 stays specialised.

    Not while an outer `torch.compile(model)` traces the caller: marking is for the separately compiled kernel.
    """
    if torch.compiler.is_compiling():
        return
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.ndim > 0 and tensor.shape[0] > 1:
            torch._dynamo.mark_dynamic(tensor, 0)


# flex_attention's default (and create_block_mask's): tiles of 128 queries x 128 keys.
_FLEX_BLOCK_SIZE = 128


def flex_bucket_length(length: int) -> int:
    """The length a flex call runs at: `length` rounded up to a power of two, at least one tile.

    Each shape is one compilation (seconds) and dynamo gives up after 8, so a model that sees many lengths would
    otherwise recompile every call and then fall back to uncompiled flex, which materialises L x L. Bucketed, lengths
    up to 64K need at most 10 kernels. The padded keys are masked and the padded query tiles have no key tiles, so
    flex skips them: the padding costs little.
    """
    return max(_FLEX_BLOCK_SIZE, 1 << (length - 1).bit_length())


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
        if keep is not None:
            # The layout `las_attention` chunks: every row rotated to start at its first real position.
            keep = roll_rows(keep, first_real_positions(keep), dim=1)
        keep = las_chunk_mask(keep, batch, length, chunk_size, device)
        batch, length = batch * math.ceil(length / chunk_size), chunk_size
    if keep is not None and bool(keep.all()):
        keep = None
    bucket = flex_bucket_length(length)
    if bucket > length:  # the keys added by bucketing are padding
        keep = torch.ones(batch, length, dtype=torch.bool, device=device) if keep is None else keep
        keep = F.pad(keep, (0, bucket - length), value=False)
    if keep is None and not is_causal:
        return None

    _mark_batch_dynamic(keep)  # captured by `mask_mod`: an input of the compiled kernel

    def mask_mod(b, h, q_idx, kv_idx):
        allowed = kv_idx <= q_idx if is_causal else kv_idx >= 0
        return allowed & keep[b, kv_idx] if keep is not None else allowed

    partial, full = _flex_block_tables(keep, length, is_causal, _FLEX_BLOCK_SIZE, device, table_length=bucket)
    return BlockMask.from_kv_blocks(
        *_blocks_in_row_order(partial),
        *_blocks_in_row_order(full),
        BLOCK_SIZE=_FLEX_BLOCK_SIZE,
        mask_mod=mask_mod,
        seq_lengths=(bucket, bucket),
    )


def _flex_block_tables(
    keep: torch.Tensor | None,
    length: int,
    is_causal: bool,
    block_size: int,
    device: torch.device,
    table_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which (query block, key block) tiles are partly and which fully visible: `(batch or 1, 1, n, n)` bool each.

    The same tables `create_block_mask` derives, but from per-block counts instead of evaluating the mask on all
    L x L positions: that costs O(batch x L^2) memory and time per model call (0.7 s and 1.25 GiB for a padded batch
    of 8 at L = 4K on one CPU core, `examples/benchmarks/block_mask.py`), this O(batch x L + batch x n^2).
    Positions past `length` in the last tile count as masked, as in `create_block_mask`. With `table_length` (a
    flex bucket), the tables cover that many positions and query tiles past `length` get no key tile at all.
    """
    num_blocks = math.ceil((table_length or length) / block_size)
    padded = num_blocks * block_size
    positions = torch.arange(padded, device=device)
    if keep is None:
        keep = (positions < length)[None]
    else:
        keep = F.pad(keep, (0, padded - keep.shape[-1]), value=False)
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
    rows_exist = (positions.view(num_blocks, block_size)[:, 0] < length)[:, None]
    full = causally_full & rows_complete & all_kept
    partial = causally_any & any_kept & rows_exist & ~full
    return partial[:, None], full[:, None]


def _blocks_in_row_order(tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A dense `(..., n, n)` tile table as flex's `(count per row, column indices with the used ones first)`."""
    tiles = tiles.to(torch.int32)
    return tiles.sum(-1, dtype=torch.int32), torch.argsort(tiles, dim=-1, descending=True, stable=True).to(torch.int32)


# `torch.compile(model)` must not trace into this frame: inductor cannot lower flex_attention inside an outer graph on
# CPU. `recursive=False` skips only this frame, so the call below still runs the separately compiled flex kernel.
@functools.partial(torch.compiler.disable, recursive=False)
def _flex_las_kernel(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    alphas: torch.Tensor,
    is_causal: bool,
    keep: torch.Tensor | None,
    block_mask=None,
    position_bias: str = "decay",
) -> torch.Tensor:
    if block_mask is None:
        block_mask = las_flex_block_mask(keep, query.shape[0], query.shape[2], is_causal, None, query.device)
    if not torch.is_grad_enabled():
        # Compiled flex would still trace a backward graph for inputs that require grad (and fail on CPU).
        query, key, value = query.detach(), key.detach(), value.detach()
    score_mod = (alibi_score_mod if position_bias == "alibi" else las_decay_score_mod)(
        alphas.to(device=query.device), is_causal
    )
    length = query.shape[-2]
    bucket = flex_bucket_length(length)
    if bucket > length:
        query, key, value = (F.pad(t, (0, 0, 0, bucket - length)) for t in (query, key, value))
    _mark_batch_dynamic(query, key, value, *(block_mask.as_tuple() if block_mask is not None else ()))
    # Only the axes marked above are dynamic: automatic dynamic shapes would make the lengths dynamic after the second
    # bucket, which the CPU kernels cannot build (see `_compiled_flex_attention`).
    with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
        output = _compiled_flex_attention()(query, key, value, score_mod=score_mod, block_mask=block_mask)
    return output[:, :, :length]


def las_decay_score_mod(alphas: torch.Tensor, is_causal: bool) -> Callable:
    """The LaS decay as a flex `score_mod`: `score * exp(-alpha_h |q_idx - kv_idx|)`.

    Written as `exp2(-alpha / ln 2 * distance)`, the form the kernels evaluate natively, and with the causal distance
    clamped at 0 instead of `abs`, which is a little faster on CPU (measured in examples/benchmarks/README.md).
    """
    log2_decay = alphas.to(torch.float32) / -math.log(2)

    def las_decay(score, b, h, q_idx, kv_idx):
        # Causal: every visible key has kv_idx <= q_idx, so the distance is q_idx - kv_idx; clamping the masked
        # future keys to 0 keeps their factor finite (unclamped it overflows to inf, and inf x 0 = NaN in backward).
        distance = (q_idx - kv_idx).clamp(min=0) if is_causal else (q_idx - kv_idx).abs()
        return score * torch.exp2(log2_decay[h] * distance)

    return las_decay


def alibi_score_mod(slopes: torch.Tensor, is_causal: bool) -> Callable:
    """ALiBi's bias as a flex `score_mod`: `score - m_h |q_idx - kv_idx|`, distances as in `las_decay_score_mod`."""
    slopes = slopes.to(torch.float32)

    def alibi(score, b, h, q_idx, kv_idx):
        distance = (q_idx - kv_idx).clamp(min=0) if is_causal else (q_idx - kv_idx).abs()
        return score - slopes[h] * distance

    return alibi
