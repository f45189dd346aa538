"""The ALiBi baseline (`attention_type="alibi"`, `position_bias="alibi"`) against a literal definition, every path."""

from __future__ import annotations

import math

import pytest
import torch

from configuration_las import LaSConfig, alibi_slopes
from las_attention import las_attention, las_attention_reference, las_attention_step, las_smooth_new_values
from modeling_las import LaSForCausalLM, LaSForSequenceClassification

SLOPES = torch.tensor([0.0, 0.05, 0.5])


def literal_alibi(query, key, value, slopes, is_causal, attention_mask=None):
    """ALiBi as Press et al. write it: softmax(q k^T / sqrt(d) - m_h |i - j| + mask) V, padded queries output 0.

    Written out with loops over heads and explicit masks, sharing nothing with the library.
    """
    batch, heads, length, head_dim = query.shape
    slopes = slopes.double().tolist()  # the stored rates, exactly, as python floats
    outputs = torch.zeros_like(value)
    for b in range(batch):
        for h in range(heads):
            scores = query[b, h] @ key[b, h].T / math.sqrt(head_dim)
            for i in range(length):
                for j in range(length):
                    scores[i, j] = scores[i, j] - slopes[h] * abs(i - j)
            allowed = torch.ones(length, length, dtype=torch.bool)
            if is_causal:
                allowed = torch.tril(allowed)
            if attention_mask is not None:
                allowed = allowed & attention_mask[b].bool()[None, :]
            probs = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
            out = probs @ value[b, h]
            if attention_mask is not None:
                out = out * attention_mask[b, :, None].to(out.dtype)
            outputs[b, h] = out
    return outputs


def make_qkv(batch=2, heads=3, length=19, head_dim=8, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, length, head_dim, generator=generator, dtype=dtype) for _ in range(3)]


def masks(length: int) -> dict[str, torch.Tensor | None]:
    right = torch.ones(2, length, dtype=torch.long)
    right[1, length - 5 :] = 0
    left = torch.ones(2, length, dtype=torch.long)
    left[0, :4] = 0
    return {"none": None, "right": right, "left": left}


def test_slopes_follow_the_alibi_rule():
    assert alibi_slopes(8) == [2.0**-k for k in range(1, 9)]
    assert alibi_slopes(4) == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]
    # Not a power of two: the 4-head slopes, then every other slope of the 8-head sequence (ALiBi's reference code).
    assert alibi_slopes(6) == [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    assert alibi_slopes(1) == [2.0**-8]


@pytest.mark.parametrize("is_causal", [True, False])
@pytest.mark.parametrize("padding", ["none", "right", "left"])
def test_reference_is_the_literal_definition(is_causal, padding):
    query, key, value = make_qkv()
    mask = masks(query.shape[2])[padding]
    expected = literal_alibi(query, key, value, SLOPES, is_causal, mask)
    actual = las_attention_reference(query, key, value, SLOPES, 1, "symmetric", is_causal, mask, position_bias="alibi")
    torch.testing.assert_close(actual, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("implementation", ["eager", "sdpa", "flex_attention"])
@pytest.mark.parametrize("is_causal", [True, False])
@pytest.mark.parametrize("padding", ["none", "right", "left"])
def test_every_backend_is_the_literal_definition_with_gradients(implementation, is_causal, padding):
    query, key, value = (t.requires_grad_() for t in make_qkv())
    mask = masks(query.shape[2])[padding]
    expected = literal_alibi(query, key, value, SLOPES, is_causal, mask)
    if implementation == "flex_attention":  # CPU flex has no backward: forward only, float32 tolerance
        with torch.no_grad():
            actual = las_attention(
                *(t.float() for t in (query, key, value)),
                SLOPES,
                is_causal=is_causal,
                attention_mask=mask,
                implementation=implementation,
                position_bias="alibi",
            )
        torch.testing.assert_close(actual.double(), expected.detach(), atol=1e-5, rtol=0)
        return
    # Small query blocks: the blocked paths (several SDPA calls / eager blocks) are what is checked.
    actual = las_attention(
        query,
        key,
        value,
        SLOPES,
        is_causal=is_causal,
        attention_mask=mask,
        implementation=implementation,
        query_block_size=4,
        position_bias="alibi",
    )
    torch.testing.assert_close(actual, expected, atol=1e-10, rtol=0)
    upstream = torch.randn_like(expected)
    grads = torch.autograd.grad((actual * upstream).sum(), (query, key, value))
    expected_grads = torch.autograd.grad((expected * upstream).sum(), (query, key, value))
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-10, rtol=0)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_chunks_are_alibi_inside_each_chunk(implementation):
    query, key, value = make_qkv(length=20)
    actual = las_attention(
        query, key, value, SLOPES, chunk_size=8, implementation=implementation, position_bias="alibi"
    )
    for start in range(0, 20, 8):
        span = slice(start, start + 8)
        expected = literal_alibi(query[:, :, span], key[:, :, span], value[:, :, span], SLOPES, True)
        torch.testing.assert_close(actual[:, :, span], expected, atol=1e-10, rtol=0)


def test_bias_is_additive_not_multiplicative():
    # All scores negative: ALiBi pushes distant keys further down (less weight), where LaS's multiplicative decay
    # pulls distant scores towards 0 (more weight). Each on the same inputs.
    length = 16
    query = torch.ones(1, 1, length, 4, dtype=torch.float64)
    key = -torch.ones(1, 1, length, 4, dtype=torch.float64)
    value = torch.randn(1, 1, length, 4, dtype=torch.float64)
    rows = {}
    for bias in ("alibi", "decay"):
        _, weights = las_attention(
            query, key, value, torch.tensor([2.0]), return_attention_weights=True, position_bias=bias
        )
        rows[bias] = weights[0, 0, -1]
    assert rows["alibi"][0] < rows["alibi"][-1]
    assert rows["decay"][0] > rows["decay"][-1]


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_cached_steps_are_the_rows_of_the_definition(implementation):
    query, key, value = make_qkv(length=12)
    expected = literal_alibi(query, key, value, SLOPES, True)
    smoothed, _ = las_smooth_new_values(value, None, 1)
    new = 3
    step = las_attention_step(
        query[:, :, -new:], key, smoothed, SLOPES, implementation=implementation, position_bias="alibi"
    )
    torch.testing.assert_close(step, expected[:, :, -new:], atol=1e-10, rtol=0)


def tiny_config(**overrides) -> LaSConfig:
    fields = dict(
        vocab_size=11,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        num_labels=3,
        attention_type="alibi",
    )
    return LaSConfig(**{**fields, **overrides})


def test_config_uses_alibi_slopes_and_no_smoothing():
    config = tiny_config(las_pool_size=5)
    assert config.head_alphas == alibi_slopes(4)
    assert config.effective_pool_size == 1
    assert config.position_bias == "alibi"
    assert LaSConfig(attention_type="las").position_bias == "decay"
    with pytest.raises(ValueError, match="las_alphas"):
        tiny_config(las_alphas=[0.0, 0.1, 0.2, 0.3])


def test_model_backends_agree_and_differ_from_softmax():
    torch.manual_seed(0)
    input_ids = torch.randint(3, 11, (2, 23))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 17:] = 0
    logits = {}
    for implementation in ("eager", "sdpa"):
        torch.manual_seed(0)
        model = LaSForSequenceClassification(tiny_config()).eval()
        model.set_attn_implementation(implementation)
        with torch.no_grad():
            logits[implementation] = model(input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(logits["eager"], logits["sdpa"], atol=1e-5, rtol=0)
    torch.manual_seed(0)
    softmax = LaSForSequenceClassification(tiny_config(attention_type="softmax")).eval()
    with torch.no_grad():
        assert not torch.allclose(softmax(input_ids, attention_mask=attention_mask).logits, logits["sdpa"])


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_causal_lm_cached_generation_equals_full_forwards(implementation):
    torch.manual_seed(0)
    model = LaSForCausalLM(tiny_config(num_labels=2)).eval()
    model.set_attn_implementation(implementation)
    prompt = torch.randint(3, 11, (1, 6))
    generated = model.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True, pad_token_id=0)
    tokens = prompt
    for _ in range(6):
        with torch.no_grad():
            next_token = model(tokens).logits[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], dim=1)
    assert torch.equal(generated, tokens)
