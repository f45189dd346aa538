"""`las_attention` (every backend) against the literal definition of LaS attention."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import las_attention as las_attention_module
from las_attention import (
    flex_bucket_length,
    las_attention,
    las_attention_reference,
    las_attention_step,
    las_chunk_mask,
    las_decay_score_mod,
    las_flex_block_mask,
    las_smooth_new_values,
    smooth_along,
)

ALPHAS = torch.tensor([0.0, 0.02, 0.3])
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make_qkv(batch=2, heads=3, length=37, head_dim=8, dtype=torch.float32, seed=0, device="cpu"):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, head_dim, generator=generator, dtype=dtype).to(device) for _ in range(3)]


def padding_mask(batch: int, length: int, lengths: list[int]) -> torch.Tensor:
    mask = torch.zeros(batch, length, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return mask


def chunk_reference(query, key, value, alphas, pool_size, pool_mode, is_causal, mask, chunk_size):
    """LaS-chunk by its definition: the reference on every chunk, chunks starting at each row's first real position."""
    rows = []
    for b in range(query.shape[0]):
        first = int(mask[b].nonzero()[0]) if mask is not None and bool(mask[b].any()) else 0
        pieces = [torch.zeros_like(value[b : b + 1, :, :first])]
        for start in range(first, query.shape[2], chunk_size):
            span = slice(start, start + chunk_size)
            piece_mask = None if mask is None else mask[b : b + 1, span]
            pieces.append(
                las_attention_reference(
                    *(t[b : b + 1, :, span] for t in (query, key, value)),
                    alphas,
                    pool_size,
                    pool_mode,
                    is_causal,
                    piece_mask,
                )
            )
        rows.append(torch.cat(pieces, dim=2))
    return torch.cat(rows, dim=0)


CASES = list(itertools.product([True, False], [1, 3, 5], ["symmetric", "causal"], [False, True]))


@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("is_causal,pool_size,pool_mode,padded", CASES)
def test_eager_equals_definition(dtype, tolerance, is_causal, pool_size, pool_mode, padded):
    query, key, value = make_qkv(dtype=dtype)
    mask = padding_mask(2, 37, [37, 23]) if padded else None
    expected = las_attention_reference(query, key, value, ALPHAS.to(dtype), pool_size, pool_mode, is_causal, mask)
    # A block size that does not divide the length exercises the blocked kernel and its last short block.
    for block in (16, 512):
        got = las_attention(query, key, value, ALPHAS, pool_size, pool_mode, is_causal, mask, query_block_size=block)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < tolerance


@pytest.mark.parametrize("is_causal,pool_mode", [(True, "symmetric"), (False, "causal")])
def test_blocked_recompute_gradients_equal_definition(is_causal, pool_mode):
    # Several query blocks with autograd on use per-block recomputation: its gradients must be exact.
    tensors = make_qkv(dtype=torch.float64, length=41)
    mask = padding_mask(2, 41, [41, 30])
    leaves = [t.clone().requires_grad_() for t in tensors]
    weights = torch.randn(2, 3, 41, 8, dtype=torch.float64)
    (las_attention(*leaves, ALPHAS, 3, pool_mode, is_causal, mask, query_block_size=8) * weights).sum().backward()
    reference = [t.clone().requires_grad_() for t in tensors]
    (las_attention_reference(*reference, ALPHAS.double(), 3, pool_mode, is_causal, mask) * weights).sum().backward()
    for ours, theirs in zip(leaves, reference):
        assert torch.allclose(ours.grad, theirs.grad, atol=1e-10)


@pytest.mark.parametrize("chunk_size", [None, 8])
def test_batch_tiles_give_the_definition_and_its_gradients(monkeypatch, chunk_size):
    # Tiles are bounded in scores, so long batches (LaS-chunk: batch x chunks) are split along the batch too; force
    # tiny tiles to get several batch tiles, a short last one, and several query blocks per tile.
    monkeypatch.setattr(las_attention_module, "_eager_tile_scores", lambda device: 3 * 8 * 41)
    tensors = make_qkv(batch=5, dtype=torch.float64, length=41)
    mask = padding_mask(5, 41, [41, 30, 1, 41, 17])
    weights = torch.randn(5, 3, 41, 8, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in tensors]
    output = las_attention(*leaves, ALPHAS, 3, "symmetric", True, mask, chunk_size=chunk_size, query_block_size=8)
    (output * weights).sum().backward()
    reference = [t.clone().requires_grad_() for t in tensors]
    if chunk_size is None:
        expected = las_attention_reference(*reference, ALPHAS.double(), 3, "symmetric", True, mask)
    else:  # LaS-chunk is LaS on each chunk
        expected = torch.cat(
            [
                las_attention_reference(
                    *(t[:, :, start : start + chunk_size] for t in reference),
                    ALPHAS.double(),
                    3,
                    "symmetric",
                    True,
                    mask[:, start : start + chunk_size],
                )
                for start in range(0, 41, chunk_size)
            ],
            dim=2,
        )
    (expected * weights).sum().backward()
    assert torch.allclose(output, expected, atol=1e-10)
    for ours, theirs in zip(leaves, reference):
        assert torch.allclose(ours.grad, theirs.grad, atol=1e-10)
    with torch.no_grad():
        _, probs = las_attention(
            *tensors, ALPHAS, 3, "symmetric", True, mask, query_block_size=8, return_attention_weights=True
        )
        monkeypatch.undo()
        _, untiled = las_attention(
            *tensors, ALPHAS, 3, "symmetric", True, mask, query_block_size=64, return_attention_weights=True
        )
    torch.testing.assert_close(probs, untiled)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_smooth_along_is_zero_padded_average_pooling(dtype, tolerance):
    # The definition's operator: avg_pool1d with zero padding counted, along any axis, any window and offset.
    x = torch.randn(3, 4, 9, 5, dtype=torch.float64).to(dtype)
    for dim, pool_size in itertools.product((0, 1, -2, -1), (1, 2, 3, 7)):
        for left in range(pool_size):
            moved = x.double().movedim(dim, -1)
            rows = F.pad(moved.reshape(-1, 1, moved.shape[-1]), (left, pool_size - 1 - left))
            expected = F.avg_pool1d(rows, pool_size, stride=1).reshape(moved.shape).movedim(-1, dim)
            smoothed = smooth_along(x, dim, pool_size, left)
            assert smoothed.dtype == dtype and smoothed.shape == x.shape
            assert (smoothed.double() - expected).abs().max().item() < tolerance, (dim, pool_size, left)


def test_attention_weights_are_the_smoothed_matrix():
    query, key, value = make_qkv(dtype=torch.float64)
    mask = padding_mask(2, 37, [37, 20])
    output, weights = las_attention(
        query, key, value, ALPHAS, 5, "symmetric", True, mask, query_block_size=16, return_attention_weights=True
    )
    assert weights.shape == (2, 3, 37, 37)
    # The returned matrix is what multiplies V (padded values are zero), and it is the definition's pooled matrix.
    masked_value = value * mask[:, None, :, None]
    assert torch.allclose(weights @ masked_value, output, atol=1e-12)
    expected = las_attention_reference(query, key, value, ALPHAS.double(), 5, "symmetric", True, mask)
    assert torch.allclose(weights @ masked_value, expected, atol=1e-12)
    # Padded keys get no weight; with a symmetric window a causal row reaches P//2 keys into the future.
    assert weights[1, :, :, 20:].abs().max() == 0
    assert weights[0, :, 10, 11:13].min() > 0 and weights[0, :, 10, 13:].abs().max() == 0


def test_causal_pool_mode_never_looks_ahead():
    query, key, value = make_qkv(length=30, dtype=torch.float64)
    base = las_attention(query, key, value, ALPHAS, 5, "causal", True)
    changed = value.clone()
    changed[:, :, 20:] += 1.0  # change only the future of positions < 20
    moved = las_attention(query, key, changed, ALPHAS, 5, "causal", True)
    assert torch.equal(base[:, :, :20], moved[:, :, :20])
    # ...while the symmetric window does see P//2 positions ahead (documented behaviour).
    symmetric = las_attention(query, key, value, ALPHAS, 5, "symmetric", True)
    symmetric_moved = las_attention(query, key, changed, ALPHAS, 5, "symmetric", True)
    assert not torch.allclose(symmetric[:, :, 18:20], symmetric_moved[:, :, 18:20])


def test_decay_is_multiplicative_not_additive():
    # Scores that are all negative: a multiplicative decay pulls distant scores up towards 0, so with a large alpha
    # the distant keys get MORE weight than the nearby ones (an additive ALiBi-style bias would do the opposite).
    length = 16
    query = torch.ones(1, 1, length, 4, dtype=torch.float64)
    key = -torch.ones(1, 1, length, 4, dtype=torch.float64)
    value = torch.randn(1, 1, length, 4, dtype=torch.float64)
    _, weights = las_attention(
        query, key, value, torch.tensor([2.0]), 1, "symmetric", True, return_attention_weights=True
    )
    last_row = weights[0, 0, -1]
    assert last_row[0] > last_row[-1]
    assert torch.allclose(last_row.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("is_causal", [True, False])
def test_zero_alphas_and_no_pooling_is_sdpa(is_causal):
    query, key, value = make_qkv(dtype=torch.float64)
    ours = las_attention(query, key, value, torch.zeros(3), 1, "symmetric", is_causal, query_block_size=16)
    theirs = F.scaled_dot_product_attention(query, key, value, is_causal=is_causal)
    assert (ours - theirs).abs().max().item() < 1e-12
    # With padding: SDPA with a boolean key mask; compare the real query rows.
    mask = padding_mask(2, 37, [37, 25])
    allowed = mask.bool()[:, None, None, :]
    if is_causal:
        allowed = allowed & torch.ones(37, 37, dtype=torch.bool).tril()
    ours = las_attention(query, key, value, torch.zeros(3), 1, "symmetric", is_causal, mask)
    theirs = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed)
    assert (ours[1, :, :25] - theirs[1, :, :25]).abs().max().item() < 1e-12


@pytest.mark.parametrize("pool_mode,is_causal", [("symmetric", True), ("causal", False)])
@pytest.mark.parametrize(
    "length,real_lengths",
    [(50, [50, 40]), (50, None), (48, None)],  # padded; a short last chunk; chunks that tile the sequence (no mask)
)
def test_chunk_equals_las_on_each_chunk(pool_mode, is_causal, length, real_lengths):
    query, key, value = make_qkv(length=length, dtype=torch.float64)
    mask = padding_mask(2, length, real_lengths) if real_lengths else None
    chunked = las_attention(query, key, value, ALPHAS, 3, pool_mode, is_causal, mask, chunk_size=16)
    pieces = []
    for start in range(0, length, 16):
        span = slice(start, start + 16)
        piece_mask = mask[:, span] if mask is not None else None
        pieces.append(
            las_attention(
                query[:, :, span], key[:, :, span], value[:, :, span], ALPHAS, 3, pool_mode, is_causal, piece_mask
            )
        )
    expected = torch.cat(pieces, dim=2)
    assert (chunked - expected).abs().max().item() < 1e-12
    # A chunk at least as long as the sequence is plain LaS.
    whole = las_attention(query, key, value, ALPHAS, 3, pool_mode, is_causal, mask)
    assert torch.equal(las_attention(query, key, value, ALPHAS, 3, pool_mode, is_causal, mask, chunk_size=64), whole)


def test_fully_padded_rows_give_zeros_not_nan_in_low_precision():
    for dtype in (torch.bfloat16, torch.float16):
        query, key, value = make_qkv(dtype=dtype)
        mask = padding_mask(2, 37, [37, 0])
        output = las_attention(query, key, value, ALPHAS, 3, "symmetric", True, mask, query_block_size=16)
        assert not torch.isnan(output).any()
        assert output[1].abs().max() == 0
        reference = las_attention_reference(
            *(t.double() for t in (query, key, value)), ALPHAS.double(), 3, "symmetric", True, mask
        )
        assert (output[0].double() - reference[0]).abs().max() < 0.05


def test_bad_arguments_raise_clear_errors():
    query, key, value = make_qkv()
    with pytest.raises(ValueError, match="alphas must hold one decay rate per head"):
        las_attention(query, key, value, torch.zeros(2))
    with pytest.raises(ValueError, match="attention_mask must be shaped"):
        las_attention(query, key, value, ALPHAS, attention_mask=torch.ones(2, 36))
    with pytest.raises(ValueError, match="pool_size=4"):
        las_attention(query, key, value, ALPHAS, pool_size=4)
    with pytest.raises(ValueError, match="chunk_size=0"):
        las_attention(query, key, value, ALPHAS, chunk_size=0)
    with pytest.raises(ValueError, match="implementation='flash'"):
        las_attention(query, key, value, ALPHAS, implementation="flash")
    with pytest.raises(ValueError, match=r"\(batch, heads, length, head_dim\)"):
        las_attention(query[0], key[0], value[0], ALPHAS)


# -- sdpa -------------------------------------------------------------------------------------------------------------

SDPA_ALPHAS = torch.tensor([0.0, 0.03, 0.4, 1.0])  # 1.0 with block 16: the float32 bound (60) allows the whole block


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("pool_size,pool_mode", [(1, "symmetric"), (3, "symmetric"), (5, "symmetric"), (3, "causal")])
@pytest.mark.parametrize("padding", [None, "right", "left"])
@pytest.mark.parametrize("chunk_size", [None, 16])
def test_sdpa_equals_definition_with_gradients(dtype, tolerance, pool_size, pool_mode, padding, chunk_size):
    # L = 45 is no multiple of the block (16) nor of the chunk (16).
    tensors = make_qkv(heads=4, length=45, dtype=dtype, seed=3)
    mask = {None: None, "right": padding_mask(2, 45, [45, 30]), "left": torch.tensor([[1] * 45, [0] * 12 + [1] * 33])}[
        padding
    ]
    upstream = torch.randn(2, 4, 45, 8, dtype=dtype, generator=torch.Generator().manual_seed(4))
    ours = [t.clone().requires_grad_() for t in tensors]
    output = las_attention(
        *ours, SDPA_ALPHAS, pool_size, pool_mode, True, mask, chunk_size, implementation="sdpa", query_block_size=16
    )
    (output * upstream).sum().backward()
    theirs = [t.clone().requires_grad_() for t in tensors]
    if chunk_size is None:
        expected = las_attention_reference(*theirs, SDPA_ALPHAS.to(dtype), pool_size, pool_mode, True, mask)
    else:  # LaS-chunk is LaS on each chunk (chunks from the first real token: left padding moves them)
        expected = chunk_reference(*theirs, SDPA_ALPHAS.to(dtype), pool_size, pool_mode, True, mask, chunk_size)
    (expected * upstream).sum().backward()
    assert (output - expected).abs().max().item() < tolerance
    for leaf, reference in zip(ours, theirs):
        assert (leaf.grad - reference.grad).abs().max().item() < tolerance


def test_sdpa_blocks_keep_the_scales_inside_the_dtype_range():
    # max(alpha) * block stays within the bound of each dtype; float16 needs the smallest blocks.
    from las_attention import _SCALE_EXPONENT_BOUND, sdpa_query_block_size

    for dtype, bound in _SCALE_EXPONENT_BOUND.items():
        for alpha in (0.01, 0.1, 1.0, 5.0):
            block = sdpa_query_block_size(alpha, dtype, 512)
            assert 1 <= block <= 512 and (block == 1 or alpha * block <= bound)
    assert sdpa_query_block_size(0.0, torch.float16, 512) == 512  # no decay: no scales at all
    assert sdpa_query_block_size(1.0, torch.float16, 512) < sdpa_query_block_size(1.0, torch.float32, 512)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sdpa_half_precision_error_is_that_of_plain_sdpa(dtype):
    # Error against the float64 truth within 2x of what plain SDPA in the same dtype makes on the same inputs.
    query, key, value = make_qkv(heads=4, length=300, head_dim=16, dtype=torch.float64, seed=5)
    mask = padding_mask(2, 300, [300, 211])
    alphas = torch.tensor([0.0, 0.01, 0.1, 0.5])
    truth = las_attention_reference(query, key, value, alphas.double(), 3, "symmetric", True, mask)
    ours = las_attention(
        *(t.to(dtype) for t in (query, key, value)), alphas, 3, "symmetric", True, mask, implementation="sdpa"
    )
    assert torch.isfinite(ours).all()
    las_error = (ours.double() - truth).abs().max().item()
    plain_truth = F.scaled_dot_product_attention(query, key, value, is_causal=True)
    plain = F.scaled_dot_product_attention(*(t.to(dtype) for t in (query, key, value)), is_causal=True)
    plain_error = (plain.double() - plain_truth).abs().max().item()
    assert las_error <= 2 * plain_error, (las_error, plain_error)


def test_sdpa_dropout_is_sdpa_dropout():
    query, key, value = make_qkv(heads=4, length=40, seed=6)
    torch.manual_seed(0)
    dropped = las_attention(
        query, key, value, torch.zeros(4), 1, "symmetric", True, dropout=0.5, implementation="sdpa"
    )
    torch.manual_seed(0)
    plain = F.scaled_dot_product_attention(query, key, value, dropout_p=0.5, is_causal=True)
    assert torch.equal(dropped, plain)
    assert not torch.allclose(dropped, las_attention(query, key, value, torch.zeros(4), implementation="sdpa"))


def test_sdpa_bidirectional_and_attention_weights_use_eager(caplog):
    query, key, value = make_qkv()
    eager = las_attention(query, key, value, ALPHAS, 3, "symmetric", False)
    assert torch.equal(las_attention(query, key, value, ALPHAS, 3, "symmetric", False, implementation="sdpa"), eager)
    output, weights = las_attention(query, key, value, ALPHAS, 3, implementation="sdpa", return_attention_weights=True)
    assert torch.allclose(output, las_attention(query, key, value, ALPHAS, 3, implementation="sdpa"), atol=1e-6)
    assert weights.shape == (2, 3, 37, 37)


# -- flex_attention -------------------------------------------------------------------------------------------------


def test_flex_forward_equals_eager_on_cpu():
    query, key, value = make_qkv(length=70, head_dim=16)
    mask = padding_mask(2, 70, [70, 45])
    with torch.no_grad():
        for pool_mode, is_causal in (("symmetric", True), ("causal", False)):
            eager = las_attention(query, key, value, ALPHAS, 3, pool_mode, is_causal, mask)
            flex = las_attention(
                query, key, value, ALPHAS, 3, pool_mode, is_causal, mask, implementation="flex_attention"
            )
            assert (flex - eager).abs().max().item() < 1e-5


@pytest.mark.parametrize("is_causal", [True, False])
def test_decay_score_mod_is_the_decay_and_finite_on_masked_keys(is_causal):
    # Called eagerly on broadcast index grids, as flex's fallback would: every (head, query, key) of 3 x 400 x 400.
    q_idx, kv_idx = torch.arange(400)[:, None], torch.arange(400)[None, :]
    heads = torch.arange(3)[:, None, None]
    # ALPHAS[2] = 0.3 over 399 positions: exp2(0.3 x 399 / ln 2) would overflow float32 without the causal clamp.
    score = torch.randn(3, 400, 400, generator=torch.Generator().manual_seed(0)).requires_grad_()
    modified = las_decay_score_mod(ALPHAS, is_causal)(score, 0, heads, q_idx, kv_idx)
    expected = score * torch.exp(-ALPHAS[heads] * (q_idx - kv_idx).abs())
    visible = kv_idx <= q_idx if is_causal else torch.ones(400, 400, dtype=torch.bool)
    torch.testing.assert_close(modified[:, visible], expected[:, visible], rtol=1e-6, atol=1e-7)
    # Masked positions must stay finite, and so must the gradient flex's backward sends through them (zeroed there).
    assert torch.isfinite(modified).all()
    modified.backward(torch.where(visible, 1.0, 0.0).expand(3, -1, -1))
    assert torch.isfinite(score.grad).all()


def test_flex_cpu_backward_falls_back_to_eager():
    query, key, value = (t.requires_grad_() for t in make_qkv(length=20))
    output = las_attention(query, key, value, ALPHAS, 3, "symmetric", True, implementation="flex_attention")
    output.sum().backward()  # torch's CPU flex_attention has no backward: we must not crash inside torch
    assert query.grad is not None and torch.isfinite(query.grad).all()


def test_flex_under_no_grad_accepts_inputs_that_require_grad():
    # e.g. evaluating with the parameters' autograd graph switched off: no backward graph may be traced.
    query, key, value = (t.requires_grad_() for t in make_qkv(length=20))
    with torch.no_grad():
        flex = las_attention(query, key, value, ALPHAS, 3, "symmetric", True, implementation="flex_attention")
        eager = las_attention(query, key, value, ALPHAS, 3, "symmetric", True, implementation="eager")
    torch.testing.assert_close(flex, eager, rtol=1e-4, atol=1e-5)


def _block_mask_from_definition(attention_mask, batch, length, is_causal, chunk_size):
    """torch's create_block_mask on the LaS mask, evaluated position by position (the O(L^2) way)."""
    from torch.nn.attention.flex_attention import create_block_mask

    keep = attention_mask.bool() if attention_mask is not None else None
    if chunk_size is not None and chunk_size < length:
        if keep is not None:  # chunks start at each row's first real position
            keep = torch.stack([row.roll(-int(row.nonzero()[0])) if row.any() else row for row in keep])
        keep = las_chunk_mask(keep, batch, length, chunk_size, torch.device("cpu"))
        batch, length = batch * -(-length // chunk_size), chunk_size
    if keep is not None and bool(keep.all()):
        keep = None  # as las_flex_block_mask: nothing padded, one mask for the whole batch
    bucket = flex_bucket_length(length)  # flex runs at a power-of-two length: the added positions do not exist
    if bucket > length:
        keep = torch.ones(batch, length, dtype=torch.bool) if keep is None else keep
        keep = F.pad(keep, (0, bucket - length), value=False)
    if keep is None and not is_causal:
        return None

    def mask_mod(b, h, q_idx, kv_idx):
        allowed = kv_idx <= q_idx if is_causal else kv_idx >= 0
        allowed = allowed & (q_idx < length)
        return allowed & keep[b, kv_idx] if keep is not None else allowed

    return create_block_mask(mask_mod, batch if keep is not None else None, None, bucket, bucket, device="cpu")


@pytest.mark.parametrize("length", [1, 127, 128, 129, 300])
@pytest.mark.parametrize("chunk_size", [None, 64])
def test_flex_block_mask_equals_create_block_mask(length, chunk_size):
    # las_flex_block_mask builds the tile tables from per-block counts; they must be create_block_mask's, bit for bit.
    generator = torch.Generator().manual_seed(length)
    right_padded = padding_mask(3, length, [length, max(1, length // 2), max(1, length - 1)])
    scattered = (torch.rand(3, length, generator=generator) > 0.3).long()
    scattered[1] = 0  # one sequence with no token at all
    for is_causal, attention_mask in itertools.product((True, False), (None, right_padded, scattered)):
        ours = las_flex_block_mask(attention_mask, 3, length, is_causal, chunk_size, torch.device("cpu"))
        expected = _block_mask_from_definition(attention_mask, 3, length, is_causal, chunk_size)
        if expected is None:
            assert ours is None
            continue
        assert ours.BLOCK_SIZE == expected.BLOCK_SIZE and ours.seq_lengths == expected.seq_lengths
        for name in (
            "kv_num_blocks",
            "kv_indices",
            "full_kv_num_blocks",
            "full_kv_indices",
            "q_num_blocks",
            "q_indices",
        ):
            assert torch.equal(getattr(ours, name), getattr(expected, name)), (name, is_causal)
        assert torch.equal(ours.to_dense(), expected.to_dense())


@requires_cuda
@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 2e-4), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("chunk_size", [None, 128])
def test_flex_forward_and_gradients_equal_eager_cuda(dtype, tolerance, chunk_size):
    tensors = make_qkv(batch=2, heads=3, length=300, head_dim=64, dtype=dtype, device="cuda")
    mask = padding_mask(2, 300, [300, 211]).cuda()
    upstream = torch.randn(2, 3, 300, 64, device="cuda", dtype=dtype)
    results = {}
    for implementation in ("eager", "flex_attention"):
        leaves = [t.clone().requires_grad_() for t in tensors]
        output = las_attention(
            *leaves, ALPHAS.cuda(), 3, "symmetric", True, mask, chunk_size=chunk_size, implementation=implementation
        )
        (output * upstream).sum().backward()
        results[implementation] = [output.detach()] + [leaf.grad for leaf in leaves]
    for eager, flex in zip(results["eager"], results["flex_attention"]):
        scale = eager.float().abs().max().clamp(min=1.0)
        assert ((flex.float() - eager.float()).abs().max() / scale).item() < tolerance


# -- KV-cache steps ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", ["eager", "sdpa", "flex_attention"])
@pytest.mark.parametrize("pool_size,chunk_size", [(1, None), (3, None), (5, None), (3, 8), (1, 8)])
@pytest.mark.parametrize("new", [1, 5])
def test_cached_steps_are_the_rows_of_the_definition(implementation, pool_size, chunk_size, new):
    # Queries T-n .. T-1 against all T keys, values smoothed step by step from the cached raw window: the last rows of
    # the definition (LaS-chunk: of the definition on chunks from the first real token), decay on absolute distances.
    query, key, value = make_qkv(length=37, dtype=torch.float64)
    mask = torch.ones(2, 37, dtype=torch.long)
    mask[1, :6] = 0  # left padding
    if chunk_size is None:
        expected = las_attention_reference(query, key, value, ALPHAS.double(), pool_size, "causal", True, mask)
    else:
        expected = chunk_reference(query, key, value, ALPHAS.double(), pool_size, "causal", True, mask, chunk_size)
    # Fill a "cache" the way a model does: a prompt of 20, then steps of `new` positions.
    smoothed, raw = las_smooth_new_values(value[:, :, :20], None, pool_size, mask[:, :20], chunk_size)
    for start in range(20, 37, new):
        stop = min(start + new, 37)
        step = las_smooth_new_values(value[:, :, start:stop], raw, pool_size, mask[:, :stop], chunk_size)
        step_smoothed, step_raw = step
        smoothed, raw = torch.cat([smoothed, step_smoothed], 2), torch.cat([raw, step_raw], 2)
        output = las_attention_step(
            query[:, :, start:stop],
            key[:, :, :stop],
            smoothed,
            ALPHAS,
            pool_size,
            mask[:, :stop],
            chunk_size,
            implementation=implementation,
            query_block_size=2,
        )
        assert (output - expected[:, :, start:stop]).abs().max().item() < 1e-10, start


def test_cached_step_attention_weights_are_the_rows_of_the_full_matrix():
    query, key, value = make_qkv(length=30)
    mask = torch.ones(2, 30, dtype=torch.long)
    mask[0, :4] = 0
    for chunk_size in (None, 7):
        _, full = las_attention(
            query, key, value, ALPHAS, 3, "causal", True, mask, chunk_size, return_attention_weights=True
        )
        smoothed, _ = las_smooth_new_values(value, None, 3, mask, chunk_size)
        _, rows = las_attention_step(
            query[:, :, 26:], key, smoothed, ALPHAS, 3, mask, chunk_size, return_attention_weights=True
        )
        assert (rows - full[:, :, 26:]).abs().max().item() < 1e-6


def test_cached_step_arguments_raise_clear_errors():
    query, key, value = make_qkv(length=10)
    with pytest.raises(ValueError, match="attention_mask must cover all 10 positions"):
        las_attention_step(query[:, :, -1:], key, value, ALPHAS, attention_mask=torch.ones(2, 9))
    with pytest.raises(ValueError, match="the keys must include the queries'"):
        las_attention_step(query, key[:, :, :4], value[:, :, :4], ALPHAS)
    with pytest.raises(ValueError, match="needs attention_mask over all positions"):
        las_smooth_new_values(value[:, :, -1:], value[:, :, :-1], 3, None, chunk_size=4)


# -- sdpa: the log-sum-exp Function, the far field, the band kernel ---------------------------------------------------

LARGE_DECAYS = {
    "global head and large decays": torch.tensor([0.0, 0.5, 3.0, 100.0]),
    "all positive (far field in the block kernel)": torch.tensor([0.2, 0.5, 3.0, 30.0]),
    "heads out of order": torch.tensor([30.0, 0.0, 100.0, 0.05]),
    "rates whose near band rounds to nothing": torch.tensor([0.0, 1e30, 3.0, 1e4]),  # the diagonal alone is near
}


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("alphas", list(LARGE_DECAYS.values()), ids=list(LARGE_DECAYS))
@pytest.mark.parametrize("query_block_size,padding", [(16, None), (64, "right"), (512, None)])
def test_sdpa_large_decays_equal_definition_with_gradients(dtype, tolerance, alphas, query_block_size, padding):
    # L = 300: several blocks, past tiles, a far field (alpha 0.2 in float32: 100 near keys) and banded heads.
    tensors = make_qkv(heads=4, length=300, dtype=dtype, seed=7)
    mask = padding_mask(2, 300, [300, 260]) if padding else None
    upstream = torch.randn(2, 4, 300, 8, dtype=dtype, generator=torch.Generator().manual_seed(8))
    ours = [t.clone().requires_grad_() for t in tensors]
    output = las_attention(
        *ours, alphas, 3, "symmetric", True, mask, implementation="sdpa", query_block_size=query_block_size
    )
    (output * upstream).sum().backward()
    theirs = [t.clone().requires_grad_() for t in tensors]
    expected = las_attention_reference(*theirs, alphas.to(dtype), 3, "symmetric", True, mask)
    (expected * upstream).sum().backward()
    assert (output - expected).abs().max().item() < tolerance
    for leaf, reference in zip(ours, theirs):
        assert (leaf.grad - reference.grad).abs().max().item() < tolerance


@pytest.mark.parametrize("margin", [-24.0, -20.0, -16.0, las_attention_module._FAR_FIELD_MARGIN])
def test_far_field_error_is_within_its_bound(monkeypatch, margin):
    # Far keys (alpha (i - j) >= T) get logit 0 instead of s e^{-alpha (i - j)}: each logit moves by at most
    # |s|_max e^{-T}, so the output by at most (exp(2 |s|_max e^{-T}) - 1) max|v| (softmax weights change by a factor
    # within exp(+-2 delta)). A lowered T (negative margin) makes the error visible, far above float64's rounding
    # (1e-15): the bound must hold there too.
    monkeypatch.setattr(las_attention_module, "_FAR_FIELD_MARGIN", margin)
    query, key, value = make_qkv(heads=4, length=256, head_dim=8, dtype=torch.float64, seed=9)
    query = query * 3.0  # large scores: |s| up to ~30
    alphas = torch.tensor([0.3, 1.0, 4.0, 20.0])
    output = las_attention(query, key, value, alphas, 1, implementation="sdpa", query_block_size=64)
    truth = las_attention_reference(query, key, value, alphas.double(), 1, "symmetric", True)
    threshold = las_attention_module.far_field_exponent(torch.float64)
    assert threshold == pytest.approx(math.log(1 / torch.finfo(torch.float64).eps) + margin)
    largest_score = ((query @ key.transpose(-1, -2)) / math.sqrt(8)).abs().max().item()
    bound = math.expm1(2 * largest_score * math.exp(-threshold)) * value.abs().max().item()
    error = (output - truth).abs().max().item()
    assert error <= bound + 1e-13, (error, bound)
    if margin <= -16:
        assert error > 1e-12, error  # the far field is in use: its error is visible
    else:
        assert error < 1e-13


def test_sdpa_saves_only_inputs_output_and_logsumexp():
    # The Function keeps q, k, v (raw, not smoothed), the output and the log-sum-exp: SDPA's own footprint.
    query, key, value = (t.requires_grad_() for t in make_qkv(heads=4, length=200, head_dim=8, seed=10))
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = las_attention(query, key, value, SDPA_ALPHAS, 3, implementation="sdpa", query_block_size=64)
    inputs = {t.data_ptr() for t in (query, key, value)}
    extra = [t for t in saved if t.data_ptr() not in inputs and t.data_ptr() != output.data_ptr()]
    # beyond the inputs and the output: the log-sum-exp (batch x heads x L) and the alphas
    assert sum(t.numel() for t in extra) <= 2 * 4 * 200 + 4, [tuple(t.shape) for t in extra]


def test_sdpa_falls_back_to_the_per_block_kernel_when_the_part_kernels_disagree(monkeypatch, caplog):
    # Fault injection: a log-sum-exp kernel whose backward is wrong must be caught by the check and never used.
    from las_attention import _attention_part_ops, _cpu_part_ops, _part_ops_agree_with_sdpa, _PartOps

    good = _cpu_part_ops()
    broken = _PartOps("broken", good.forward, lambda *args: [2 * g for g in good.backward(*args)])
    assert _part_ops_agree_with_sdpa(good, torch.device("cpu"), torch.float32)
    assert not _part_ops_agree_with_sdpa(broken, torch.device("cpu"), torch.float32)
    monkeypatch.setattr(las_attention_module, "_cpu_part_ops", lambda: broken)
    monkeypatch.setattr(las_attention_module, "_PART_OPS_CHECKED", {})  # checked afresh, forgotten afterwards
    with caplog.at_level("WARNING"):
        assert _attention_part_ops(torch.device("cpu"), torch.float32) is None
    tensors = make_qkv(heads=4, length=45, seed=11)
    ours = [t.clone().requires_grad_() for t in tensors]
    las_attention(*ours, SDPA_ALPHAS, 3, implementation="sdpa", query_block_size=16).sum().backward()
    theirs = [t.clone().requires_grad_() for t in tensors]
    las_attention_reference(*theirs, SDPA_ALPHAS, 3, "symmetric", True).sum().backward()
    for leaf, reference in zip(ours, theirs):
        assert (leaf.grad - reference.grad).abs().max().item() < 1e-5


class _SdpaLaS(torch.nn.Module):
    def __init__(self, alphas: torch.Tensor):
        super().__init__()
        self.register_buffer("alphas", alphas)

    def forward(self, query, key, value, attention_mask=None):
        return las_attention(
            query, key, value, self.alphas, 3, "causal", True, attention_mask, implementation="sdpa", max_alpha=1.0
        )


@pytest.mark.slow  # compilations
@pytest.mark.parametrize("padding", [None, "left"])
def test_the_kernel_check_runs_eagerly_when_first_met_inside_compile_or_export(monkeypatch, padding):
    # The first LaS call of a process may be inside torch.compile(fullgraph=True) or torch.export: the check of the
    # log-sum-exp kernels (its own small eager attention and backward) must neither break the graph nor be traced.
    module = _SdpaLaS(torch.tensor([0.0, 0.1, 0.5, 1.0]))
    query, key, value = make_qkv(heads=4, length=50, seed=3)
    mask = padding_mask(2, 50, [50, 41]).flip(-1) if padding else None
    expected = module(query, key, value, mask)
    for run in (
        lambda: torch.compile(module, fullgraph=True)(query, key, value, mask),
        lambda: torch.export.export(module, (query, key, value, mask)).module()(query, key, value, mask),
    ):
        monkeypatch.setattr(las_attention_module, "_PART_OPS_CHECKED", {})
        torch._dynamo.reset()
        assert torch.allclose(run(), expected, atol=1e-5)
        # Left padding runs the per-block kernel (no check needed), which must not read the alphas on the host.
        checked = {} if padding else {(torch.device("cpu"), torch.float32): 0}
        assert las_attention_module._PART_OPS_CHECKED == checked


def test_aten_schemas_are_checked():
    from las_attention import _EXPECTED_SCHEMAS, _schemas_match

    assert _schemas_match("_scaled_dot_product_flash_attention_for_cpu")
    original = _EXPECTED_SCHEMAS["_scaled_dot_product_flash_attention_for_cpu"]
    try:
        _EXPECTED_SCHEMAS["_scaled_dot_product_flash_attention_for_cpu"] = original.replace("is_causal", "causal")
        assert not _schemas_match("_scaled_dot_product_flash_attention_for_cpu")
    finally:
        _EXPECTED_SCHEMAS["_scaled_dot_product_flash_attention_for_cpu"] = original


def test_max_alpha_plans_without_reading_the_alphas(monkeypatch):
    # With max_alpha and under torch.compile, the plan is one group from max_alpha: alphas are never read on the host.
    from las_attention import _head_groups

    class Unreadable(torch.Tensor):
        def tolist(self):
            raise AssertionError("alphas read on the host")

    alphas = torch.tensor([0.0, 0.01, 0.1, 0.5]).as_subclass(Unreadable)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    groups = _head_groups(alphas, 0.5, torch.float32, 512, 1000)
    assert len(groups) == 1 and groups[0].kernel == "blocks" and groups[0].block == 120
    tensors = make_qkv(heads=4, length=45, seed=12)
    plain = torch.tensor([0.0, 0.01, 0.1, 0.5])
    given = las_attention(*tensors, plain, 3, implementation="sdpa", query_block_size=16, max_alpha=0.5)
    assert (given - las_attention(*tensors, plain, 3, implementation="sdpa", query_block_size=16)).abs().max() < 1e-6


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sdpa_large_decay_half_precision_error_is_that_of_plain_sdpa(dtype):
    # float16's narrow range used to force blocks of 4 / alpha queries; the band kernel takes those heads now.
    query, key, value = make_qkv(heads=4, length=300, head_dim=16, dtype=torch.float64, seed=13)
    alphas = torch.tensor([0.0, 0.3, 5.0, 100.0])
    truth = las_attention_reference(query, key, value, alphas.double(), 3, "symmetric", True)
    ours = las_attention(*(t.to(dtype) for t in (query, key, value)), alphas, 3, implementation="sdpa")
    assert torch.isfinite(ours).all()
    plain_truth = F.scaled_dot_product_attention(query, key, value, is_causal=True)
    plain = F.scaled_dot_product_attention(*(t.to(dtype) for t in (query, key, value)), is_causal=True)
    plain_error = (plain.double() - plain_truth).abs().max().item()
    assert (ours.double() - truth).abs().max().item() <= 2 * plain_error
