"""LaSForCausalLM: generate() with a KV cache against full forwards, position_ids, the loss, tied weights, the LM
example. (Checks every head shares, left padding and cache = no cache included, are in `test_modeling_common.py`.)"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from modeling_las import LaSForCausalLM, LaSForSequenceClassification
from tests.support.models import ATTENTION_TYPES, left_padded_batch, lm, lm_config


def greedy_by_full_forwards(model, ids, mask, new_tokens) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Greedy decoding without a cache: the whole sequence through the model at every step."""
    logits_per_step = []
    for _ in range(new_tokens):
        logits = model(ids, attention_mask=mask).logits[:, -1]
        logits_per_step.append(logits)
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return ids, logits_per_step


# -- generate() with the KV cache -------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention_type", ATTENTION_TYPES)
@pytest.mark.parametrize("pool_size", [1, 3])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_cached_greedy_generation_equals_full_forwards(attention_type, pool_size, implementation):
    model = lm(implementation=implementation, attention_type=attention_type, las_pool_size=pool_size)
    reference = lm(implementation="eager", attention_type=attention_type, las_pool_size=pool_size)
    ids, mask = left_padded_batch()
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=8,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        expected_ids, expected_logits = greedy_by_full_forwards(reference, ids, mask, 8)
    assert isinstance(out.past_key_values if hasattr(out, "past_key_values") else out.cache, DynamicCache)
    assert torch.equal(out.sequences, expected_ids)
    for got, expected in zip(out.logits, expected_logits, strict=True):
        assert (got - expected).abs().max().item() < 1e-5


def test_flex_model_generates_as_eager_full_forwards():
    # The prompt runs on compiled flex attention; the steps on the sdpa kernel (flex would recompile every length).
    model = lm(implementation="flex_attention", attention_type="las_chunk")
    reference = lm(implementation="eager", attention_type="las_chunk")
    ids, mask = left_padded_batch()
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=6,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        expected_ids, expected_logits = greedy_by_full_forwards(reference, ids, mask, 6)
    assert torch.equal(out.sequences, expected_ids)
    assert max((g - e).abs().max().item() for g, e in zip(out.logits, expected_logits)) < 1e-5


def test_steps_of_several_tokens_and_attentions_match_the_full_forward():
    # A cache step may carry several tokens (e.g. a second prompt chunk) across a chunk boundary; its outputs, hidden
    # states and LaS matrices are the rows of the full forward.
    model = lm(attention_type="las_chunk")
    ids, mask = left_padded_batch(lengths=(12, 8), width=12)
    with torch.no_grad():
        full = model(ids, attention_mask=mask, output_attentions=True)
        first = model(ids[:, :4], attention_mask=mask[:, :4], use_cache=True)
        second = model(ids[:, 4:], attention_mask=mask, cache=first.cache, output_attentions=True)
    assert second.cache.get_seq_length() == 12
    assert (second.logits - full.logits[:, 4:]).abs().max().item() < 1e-5
    for got, expected in zip(second.attentions, full.attentions):
        assert (got - expected[:, :, 4:]).abs().max().item() < 1e-5


def test_beam_search_runs_on_the_cache():
    # Beam search reorders the cache; the raw-value window lives in the cached value tensor and is reordered with it.
    model = lm()
    ids, mask = left_padded_batch(lengths=(5, 3), width=5)
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=5,
            num_beams=3,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
        rescored = model(out.sequences, attention_mask=torch.cat([mask, torch.ones(2, 5, dtype=torch.long)], 1)).logits
    log_probs = rescored[:, 4:-1].log_softmax(-1).gather(-1, out.sequences[:, 5:, None]).sum((1, 2))
    assert torch.allclose(out.sequences_scores * 5, log_probs, atol=1e-4)


def test_cache_rules_raise_clear_errors():
    with pytest.raises(ValueError, match="needs las_pool_mode='causal'.*P//2"):
        LaSForCausalLM(lm_config(las_pool_mode="symmetric"))
    with pytest.raises(ValueError, match="needs las_pool_mode='causal'"):
        AutoModelForCausalLM.from_config(AutoConfig.for_model("las"))
    with pytest.raises(ValueError, match="needs is_causal=True"):
        LaSForCausalLM(lm_config(is_causal=False))
    LaSForCausalLM(lm_config(las_pool_mode="symmetric", las_pool_size=1))  # no window: nothing to look ahead
    LaSForCausalLM(lm_config(las_pool_mode="symmetric", attention_type="softmax"))
    classifier = LaSForSequenceClassification(lm_config(las_pool_mode="symmetric")).eval()
    ids, mask = left_padded_batch()
    with pytest.raises(ValueError, match="KV cache needs las_pool_mode='causal'"):
        classifier.las(ids, use_cache=True)
    model = lm()
    with torch.no_grad():
        cache = model(ids, attention_mask=mask, use_cache=True).cache
        with pytest.raises(ValueError, match=r"after 9 cached positions .* expected \(3, 10\)"):
            model(ids[:, :1], attention_mask=mask, cache=cache)


# -- left padding and position_ids ------------------------------------------------------------------------------------


def test_position_ids_are_used_and_default_to_the_mask_count():
    model = lm(attention_type="softmax")
    ids, mask = left_padded_batch()
    with torch.no_grad():
        default = model(ids, attention_mask=mask).logits
        counted = (mask.cumsum(-1) - 1).clamp(min=0)
        assert torch.equal(model(ids, attention_mask=mask, position_ids=counted).logits, default)
        shifted = model(ids, attention_mask=mask, position_ids=counted + 5).logits
        assert (shifted - default)[mask.bool()].abs().max() > 1e-3
        with pytest.raises(ValueError, match=r"position_ids must lie in \[0, max_position_embeddings=64\)"):
            model(ids, position_ids=counted + 60)


# -- loss, weights, loading -------------------------------------------------------------------------------------------


def test_loss_is_shifted_cross_entropy():
    model = lm()
    ids, mask = left_padded_batch()
    labels = ids.masked_fill(mask == 0, -100)
    out = model(ids, attention_mask=mask, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, 16).float()
    targets = labels[:, 1:].reshape(-1)
    kept = targets != -100
    hand = -(logits.log_softmax(-1)[kept].gather(-1, targets[kept, None])).mean()
    assert torch.allclose(out.loss, hand, atol=1e-6)
    assert torch.allclose(out.loss, F.cross_entropy(logits, targets, ignore_index=-100))
    out.loss.backward()  # trains


@pytest.mark.parametrize("tied", [True, False])
def test_tied_and_untied_embeddings_survive_save_and_reload(tmp_path, tied):
    model = lm(tie_word_embeddings=tied)
    embedding = model.las.embeddings.token_embeddings.weight
    assert (model.lm_head.weight is embedding) == tied
    ids, mask = left_padded_batch()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert isinstance(loaded, LaSForCausalLM)
    assert (loaded.lm_head.weight is loaded.las.embeddings.token_embeddings.weight) == tied
    with torch.no_grad():
        assert torch.equal(loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits)


def test_generate_and_trainer_keywords_are_taken_and_checked():
    # What generate() and Trainer pass is accepted: cache_position is checked against the cache (not ignored), and
    # num_items_in_batch makes the loss a sum over the gradient-accumulated batch's target tokens.
    model = lm()
    ids, mask = left_padded_batch()
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        mean = model(ids, attention_mask=mask, labels=labels).loss
        summed = model(ids, attention_mask=mask, labels=labels, num_items_in_batch=torch.tensor(100)).loss
        targets = int((labels[:, 1:] != -100).sum())
        assert torch.allclose(summed, mean * targets / 100, atol=1e-6)
        first = model(ids[:, :5], attention_mask=mask[:, :5], use_cache=True, cache_position=torch.arange(5))
        step = model(ids[:, 5:], attention_mask=mask, cache=first.cache, cache_position=torch.arange(5, 9))
        assert step.logits.shape == (3, 4, 16)
        with pytest.raises(ValueError, match="cache_position runs from 0 to 3, but the cache holds 9 positions"):
            model(
                ids[:, 5:],
                attention_mask=torch.cat([mask, mask[:, 5:]], 1),
                cache=step.cache,
                cache_position=torch.arange(4),
            )
        kept = model(ids, attention_mask=mask, logits_to_keep=1, return_dict=False)[0]
        assert kept.shape == (3, 1, 16)
    # generate() passes cache_position once the forward takes it: cached generation still equals full forwards.
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False)
        expected, _ = greedy_by_full_forwards(model, ids, mask, 4)
    assert torch.equal(out, expected)
