"""LaS as a registered transformers attention implementation: `attn_implementation="las"` in Llama, Qwen2, GPT-NeoX,
BERT and ModernBERT (tiny configs, no downloads)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from transformers import (
    AttentionInterface,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    BertConfig,
    BloomConfig,
    DynamicCache,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    ModernBertConfig,
    PreTrainedModel,
    Qwen2Config,
)
from transformers.integrations.flex_attention import flex_attention_forward
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

import las_interface
from las_attention import las_attention_reference

las_interface.register()

VOCAB = 48
HEADS = 4
ALPHAS = [0.0, 0.05, 0.3, 1.2]  # a global head and decays from mild to strong


def decoder_config(family: str, **overrides):
    """A tiny decoder-only config of `family`, with grouped-query attention where the family has it."""
    shared = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=HEADS)
    shared.update(pad_token_id=0, bos_token_id=None, eos_token_id=None)  # generation never stops early
    if family == "llama":
        config = LlamaConfig(**shared, intermediate_size=64, num_key_value_heads=2)
    elif family == "qwen2":
        config = Qwen2Config(**shared, intermediate_size=64, num_key_value_heads=2)
    elif family == "mistral":
        config = MistralConfig(**shared, intermediate_size=64, num_key_value_heads=2, sliding_window=None)
    elif family == "gpt_neox":
        config = GPTNeoXConfig(**shared, intermediate_size=64)
    else:
        raise ValueError(family)
    for field, value in overrides.items():
        setattr(config, field, value)
    return config


def encoder_config(family: str, **overrides):
    if family == "bert":
        config = BertConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=HEADS, intermediate_size=64
        )
    elif family == "modernbert":
        config = ModernBertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=HEADS,
            intermediate_size=64,
            pad_token_id=0,
            local_attention=64,  # a window of 32 tokens on each side: wider than the tests' sequences
        )
    else:
        raise ValueError(family)
    for field, value in overrides.items():
        setattr(config, field, value)
    return config


DECODERS = ("llama", "qwen2", "gpt_neox")
ENCODERS = ("bert", "modernbert")


def build(config, implementation: str, dtype=torch.float32, seed: int = 0, encoder: bool = False):
    """The same weights for the same seed, whatever the implementation (`from_config` changes the config it is given:
    each model gets its own copy)."""
    torch.manual_seed(seed)
    auto = AutoModelForMaskedLM if encoder else AutoModelForCausalLM
    return auto.from_config(copy.deepcopy(config), attn_implementation=implementation, dtype=dtype).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# -- the reference: `las_attention_reference` on the module's own q, k, v ---------------------------------------------


def reference_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **_):
    """The literal LaS definition on what the model passes, with the settings read straight from the test's config."""
    assert attention_mask is None, "the reference comparison runs unpadded batches"
    causal = is_causal if is_causal is not None else module.is_causal
    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    query = query * (scaling * math.sqrt(query.shape[-1]))  # the reference scales by 1/sqrt(head_dim)
    output = las_attention_reference(
        query,
        key,
        value,
        torch.tensor(module.config.las_alphas, dtype=query.dtype),
        module.config.las_pool_size,
        "causal" if causal else "symmetric",
        causal,
    )
    return output.transpose(1, 2).contiguous(), None


@pytest.fixture(scope="module", autouse=True)
def reference_implementation():
    AttentionInterface.register("las_reference_test", reference_attention)
    AttentionMaskInterface.register("las_reference_test", sdpa_mask)
    yield
    del AttentionInterface._global_mapping["las_reference_test"]
    del AttentionMaskInterface._global_mapping["las_reference_test"]


def _logits(model, input_ids, attention_mask=None, position_ids=None):
    with torch.no_grad():
        return model(input_ids, attention_mask=attention_mask, position_ids=position_ids).logits


@pytest.mark.parametrize("family", DECODERS + ENCODERS)
def test_no_decay_no_smoothing_is_sdpa(family):
    encoder = family in ENCODERS
    make = encoder_config if encoder else decoder_config
    config = make(family, las_alphas=[0.0] * HEADS, las_pool_size=1)
    ids = tokens(2, 12)
    las = _logits(build(config, "las", encoder=encoder), ids)
    sdpa = _logits(build(config, "sdpa", encoder=encoder), ids)
    torch.testing.assert_close(las, sdpa, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", DECODERS + ENCODERS)
def test_decay_and_smoothing_match_the_definition(family):
    encoder = family in ENCODERS
    make = encoder_config if encoder else decoder_config
    config = make(family, las_alphas=ALPHAS, las_pool_size=3)
    ids = tokens(2, 13)
    las = _logits(build(config, "las", torch.float64, encoder=encoder), ids)
    reference = _logits(build(config, "las_reference_test", torch.float64, encoder=encoder), ids)
    torch.testing.assert_close(las, reference, atol=1e-10, rtol=0)
    plain = _logits(build(config, "sdpa", torch.float64, encoder=encoder), ids)
    assert (las - plain).abs().max() > 1e-6  # LaS changed the model (BERT's small init: a small change)


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
def test_kernels_agree_in_the_model(kernel):
    config = decoder_config("llama", las_alphas=ALPHAS, las_pool_size=3, las_kernel=kernel)
    ids = tokens(2, 13)
    reference_config = decoder_config("llama", las_alphas=ALPHAS, las_pool_size=3)
    reference = _logits(build(reference_config, "las_reference_test", torch.float64), ids)
    torch.testing.assert_close(_logits(build(config, "las", torch.float64), ids), reference, atol=1e-10, rtol=0)


def test_the_modules_own_scaling_is_honoured():
    class Module(torch.nn.Module):
        is_causal = True
        config = LlamaConfig(las_alphas=ALPHAS, las_pool_size=3)

    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, HEADS, 9, 8, generator=generator, dtype=torch.float64) for _ in range(3))
    output, _ = las_interface.las_attention_forward(Module(), query, key, value, None, scaling=0.7)
    expected = las_attention_reference(
        query * 0.7 * math.sqrt(8), key, value, torch.tensor(ALPHAS, dtype=torch.float64), 3, "causal", True
    )
    torch.testing.assert_close(output, expected.transpose(1, 2), atol=1e-12, rtol=0)


def test_default_settings():
    decoder = las_interface.las_settings(LlamaConfig(), HEADS, is_causal=True)
    encoder = las_interface.las_settings(BertConfig(), HEADS, is_causal=False)
    assert decoder.pool_mode == "causal" and encoder.pool_mode == "symmetric"
    assert decoder.pool_size == 3 and decoder.chunk_size is None and decoder.kernel == "sdpa"
    assert decoder.alphas == pytest.approx([0.0, 0.001, 0.01, 0.1])  # LaSConfig's defaults: B = 0.1, 2 decades
    chunked = las_interface.las_settings(LlamaConfig(las_chunk_size=7), HEADS, True, chunked=True)
    assert chunked.chunk_size == 7


# -- decoding with transformers' own cache ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, implementation, extra",
    [
        ("llama", "las", {}),
        ("qwen2", "las", {}),
        ("gpt_neox", "las", {}),
        ("llama", "las_chunk", {"las_chunk_size": 5}),  # the prompt and the generation cross chunk boundaries
        ("llama", "las", {"las_pool_size": 5, "las_kernel": "eager"}),
    ],
)
def test_cached_greedy_generation_equals_full_forwards(family, implementation, extra):
    config = decoder_config(family, **{"las_alphas": ALPHAS, "las_pool_size": 3, **extra})
    model = build(config, implementation, torch.float64)
    prompt = tokens(1, 7)
    with torch.no_grad():
        out = model.generate(
            prompt,
            max_new_tokens=8,
            do_sample=False,
            return_dict_in_generate=True,
            output_logits=True,
            pad_token_id=0,
        )
    sequence = prompt
    for step_logits in out.logits:
        full = _logits(model, sequence)[:, -1]  # a full forward over everything so far, no cache
        # generate() returns its logits in float32: the float64 values agree to ~1e-10 (see the tests above).
        torch.testing.assert_close(step_logits, full.float(), atol=1e-6, rtol=0)
        sequence = torch.cat([sequence, full.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out.sequences, sequence)


@pytest.mark.parametrize("implementation", ["las", "las_chunk"])
def test_several_new_tokens_after_a_cache(implementation):
    """A cached call with several new tokens (chunked prefill, assisted decoding) gives the full forward's logits."""
    config = decoder_config("llama", las_alphas=ALPHAS, las_pool_size=5, las_chunk_size=4)
    model = build(config, implementation, torch.float64)
    ids = tokens(2, 11)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # the second row is left-padded
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    full = _logits(model, ids, mask, positions)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(ids[:, :6], attention_mask=mask[:, :6], position_ids=positions[:, :6], cache=cache, use_cache=True)
        rest = model(ids[:, 6:], attention_mask=mask, position_ids=positions[:, 6:], cache=cache, use_cache=True)
    torch.testing.assert_close(rest.logits, full[:, 6:], atol=1e-10, rtol=0)


@pytest.mark.parametrize("family, implementation", [(family, "las") for family in DECODERS] + [("llama", "las_chunk")])
def test_left_padded_batch_equals_each_prompt_alone(family, implementation):
    config = decoder_config(family, las_alphas=ALPHAS, las_pool_size=3, las_chunk_size=4)
    model = build(config, implementation, torch.float64)
    prompts = [tokens(1, n, seed=n)[0] for n in (9, 4, 6)]
    width = max(len(p) for p in prompts)
    ids = torch.stack([torch.cat([torch.zeros(width - len(p), dtype=torch.long), p]) for p in prompts])
    mask = (torch.arange(width)[None] >= (width - torch.tensor([len(p) for p in prompts]))[:, None]).long()
    # Positions counted over real tokens, as generate() does (rotary angles are then those of the prompt alone).
    batched = _logits(model, ids, mask, (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1))
    with torch.no_grad():
        generated = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    for row, prompt in enumerate(prompts):
        alone = _logits(model, prompt[None])
        torch.testing.assert_close(batched[row, width - len(prompt) :], alone[0], atol=1e-10, rtol=0)
        with torch.no_grad():
            expected = model.generate(prompt[None], max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(generated[row, width:], expected[0, len(prompt) :])


@pytest.mark.parametrize("family", ("llama",) + ENCODERS)
def test_right_padded_batch_equals_each_sequence_alone(family):
    encoder = family in ENCODERS
    config = (encoder_config if encoder else decoder_config)(family, las_alphas=ALPHAS, las_pool_size=3)
    model = build(config, "las", torch.float64, encoder=encoder)
    lengths = (10, 5)
    ids = tokens(2, max(lengths))
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    batched = _logits(model, ids * mask, mask)
    for row, length in enumerate(lengths):
        alone = _logits(model, ids[row : row + 1, :length])
        torch.testing.assert_close(batched[row, :length], alone[0], atol=1e-10, rtol=0)


# -- training ---------------------------------------------------------------------------------------------------------


def _gradients(model, ids):
    model.zero_grad()
    model(ids, labels=ids).loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family, options", [("llama", None), ("gpt_neox", {"use_reentrant": False})])
def test_gradient_checkpointing(family, options):
    model = build(decoder_config(family, las_alphas=ALPHAS), "las", torch.float64).train()
    ids = tokens(2, 12)
    plain = _gradients(model, ids)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
    assert model.is_activation_checkpointing
    checkpointed = _gradients(model, ids)
    assert plain.keys() == checkpointed.keys() and plain
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-10, rtol=0)


def test_attention_dropout_acts_in_training_only():
    model = build(decoder_config("llama", las_alphas=ALPHAS, attention_dropout=0.5), "las")
    ids = tokens(2, 12)
    evaluated = _logits(model, ids)
    torch.testing.assert_close(_logits(model, ids), evaluated, atol=0, rtol=0)
    model.train()
    torch.manual_seed(0)
    trained = _logits(model, ids)
    assert (trained - evaluated).abs().max() > 1e-3


@pytest.mark.slow
def test_torch_compile():
    model = build(decoder_config("llama", las_alphas=ALPHAS), "las")
    ids = tokens(2, 12)
    expected = _logits(model, ids)
    expected_gradients = _gradients(model, ids)
    compiled = torch.compile(model)
    torch.testing.assert_close(_logits(compiled, ids), expected, atol=1e-5, rtol=1e-5)
    model.zero_grad()
    compiled(ids, labels=ids).loss.backward()  # the compiled module trains the same parameters
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected_gradients[name], atol=1e-6, rtol=1e-4)


# -- saving, loading, and the other implementations -------------------------------------------------------------------


def test_save_and_reload_with_las(tmp_path):
    model = build(decoder_config("qwen2", las_alphas=ALPHAS, las_pool_size=5), "las")
    ids = tokens(2, 11)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="las").eval()
    assert reloaded.config.las_pool_size == 5 and reloaded.config.las_alphas == ALPHAS
    torch.testing.assert_close(_logits(reloaded, ids), _logits(model, ids), atol=0, rtol=0)
    # Keyword arguments of from_pretrained reach the config (register() declares the fields).
    smoothed_more = AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="las", las_pool_size=7)
    assert smoothed_more.config.las_pool_size == 7


def test_las_keywords_of_from_config_reach_the_config():
    # As in from_pretrained: keyword arguments set the config's LaS fields, not the model constructor's arguments.
    ids = tokens(2, 9)
    torch.manual_seed(0)
    by_keyword = AutoModelForCausalLM.from_config(
        decoder_config("llama"), attn_implementation="las", las_alphas=ALPHAS, las_pool_size=5
    ).eval()
    assert by_keyword.config.las_pool_size == 5 and by_keyword.config.las_alphas == ALPHAS
    torch.manual_seed(0)
    on_config = AutoModelForCausalLM.from_config(
        decoder_config("llama", las_alphas=ALPHAS, las_pool_size=5), attn_implementation="las"
    ).eval()
    torch.testing.assert_close(_logits(by_keyword, ids), _logits(on_config, ids), atol=0, rtol=0)


def test_other_implementations_are_unchanged():
    expected = {"sdpa": sdpa_attention_forward, "flex_attention": flex_attention_forward}
    expected_masks = {"sdpa": sdpa_mask, "eager": eager_mask}
    las_interface.register()  # idempotent
    las_interface.register()
    for name, function in expected.items():
        assert AttentionInterface._global_mapping[name] is function
    for name, function in expected_masks.items():
        assert AttentionMaskInterface._global_mapping[name] is function
    for method in ("get_correct_attn_implementation", "set_attn_implementation", "_from_config"):
        wrapped = getattr(PreTrainedModel, method)
        assert not getattr(wrapped.__wrapped__, "_las_check", False)  # wrapped once, not once per register()
    config = decoder_config("llama", las_alphas=ALPHAS, las_pool_size=3)
    ids = tokens(2, 10)
    sdpa, eager = build(config, "sdpa"), build(config, "eager")
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    torch.testing.assert_close(_logits(sdpa, ids), _logits(eager, ids), atol=1e-5, rtol=0)
    assert (_logits(sdpa, ids) - _logits(build(config, "las"), ids)).abs().max() > 1e-3


# -- errors -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("las_pool_size", 2, "LlamaConfig.las_pool_size=2 must be odd"),
        ("las_pool_size", 0, "LlamaConfig.las_pool_size=0 must be a positive odd integer"),
        ("las_alpha_max", -0.1, "LlamaConfig.las_alpha_max=-0.1 must be >= 0"),
        ("las_alpha_max", "0.1", "LlamaConfig.las_alpha_max='0.1' must be a number"),
        ("las_alphas", [0.0, 0.1], "LlamaConfig.las_alphas has 2 values but the attention has 4 heads"),
        ("las_alphas", [0.0, -1.0, 0.1, 0.2], "LlamaConfig.las_alphas must all be >= 0"),
        ("las_pool_mode", "centred", "LlamaConfig.las_pool_mode='centred' is not one of"),
        ("las_pool_mode", "symmetric", "las_pool_mode='symmetric' cannot be used in a causal model"),
        ("las_chunk_size", 0, "LlamaConfig.las_chunk_size=0 must be an integer >= 1"),
        ("las_kernel", "flash", "LlamaConfig.las_kernel='flash' is not one of"),
    ],
)
def test_bad_settings_are_refused_on_every_route(tmp_path, field, value, message):
    causal_only = field == "las_pool_mode" and value == "symmetric"  # known to be wrong only once the call is causal
    # from_config: the config carries the value, or a keyword argument does.
    if not causal_only:
        with pytest.raises(ValueError, match=message):
            build(decoder_config("llama", **{field: value}), "las")
        with pytest.raises(ValueError, match=message):
            AutoModelForCausalLM.from_config(decoder_config("llama"), attn_implementation="las", **{field: value})
    # An assignment after the model was built: refused at the next call.
    model = build(decoder_config("llama"), "las")
    setattr(model.config, field, value)
    with pytest.raises(ValueError, match=message):
        model(tokens(1, 5))
    # from_pretrained keyword arguments.
    build(decoder_config("llama"), "sdpa").save_pretrained(tmp_path)
    if not causal_only:
        with pytest.raises(ValueError, match=message):
            AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="las", **{field: value})


def test_a_symmetric_window_is_allowed_in_an_encoder():
    config = encoder_config("bert", las_alphas=ALPHAS, las_pool_mode="symmetric")
    assert _logits(build(config, "las", encoder=True), tokens(1, 6)).isfinite().all()


def test_a_model_that_bypasses_the_interface_is_refused():
    config = BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=1, n_head=HEADS)
    with pytest.raises(ValueError, match="BloomForCausalLM does not route its attention through"):
        AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation="las")
    model = AutoModelForCausalLM.from_config(config)
    with pytest.raises(ValueError, match="does not route its attention"):
        model.set_attn_implementation("las")


def test_a_custom_4d_mask_is_refused():
    model = build(decoder_config("llama"), "las")
    mask = torch.ones(1, 1, 5, 5, dtype=torch.bool).tril()
    with pytest.raises(ValueError, match="got an attention mask of shape"):
        model(tokens(1, 5), attention_mask=mask)


def test_packed_sequences_are_refused():
    model = build(decoder_config("llama"), "las")
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 2]])
    with pytest.raises(ValueError, match="packed sequences"):
        model(tokens(1, 6), position_ids=position_ids)


def test_a_sliding_window_is_honoured_where_it_covers_the_sequence_and_refused_otherwise():
    ids = tokens(2, 8)
    full = _logits(build(decoder_config("mistral", las_alphas=ALPHAS), "las"), ids)
    wide = build(decoder_config("mistral", las_alphas=ALPHAS, sliding_window=8), "las")
    torch.testing.assert_close(_logits(wide, ids), full, atol=0, rtol=0)
    narrow = build(decoder_config("mistral", las_alphas=ALPHAS, sliding_window=4), "las")
    with pytest.raises(ValueError, match="sliding window shorter than the sequence"):
        narrow(ids)
    with pytest.raises(ValueError, match="sliding window shorter than the sequence|dropped"):
        wide.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)  # grows past the window


def test_a_static_cache_is_refused():
    model = build(decoder_config("llama"), "las")
    with pytest.raises(ValueError, match="StaticCache"):
        model.generate(tokens(1, 5), max_new_tokens=2, do_sample=False, cache_implementation="static")


def test_unsupported_keyword_arguments_are_refused():
    class Module(torch.nn.Module):
        is_causal = True
        config = LlamaConfig()

    query = torch.randn(1, HEADS, 3, 8)
    with pytest.raises(ValueError, match="softcap"):
        las_interface.las_attention_forward(Module(), query, query, query, None, scaling=0.3, softcap=30.0)


def test_attention_weights_come_from_the_eager_kernel():
    model = build(decoder_config("llama", las_alphas=ALPHAS), "las")
    with torch.no_grad():
        weights = model(tokens(2, 7), output_attentions=True).attentions
    assert len(weights) == 2 and weights[0].shape == (2, HEADS, 7, 7)
    assert torch.equal(weights[0].triu(1), torch.zeros_like(weights[0]))  # causal window: nothing from the future


# -- the example ------------------------------------------------------------------------------------------------------


def test_lm_example_compares_sdpa_and_las_on_the_same_batches(tmp_path):
    from examples import run_lm_hf

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(10):
        (corpus / f"module_{i}.py").write_text(f"def function_{i}(x):\n    return x * {i} + {i}\n" * 20)
    output = tmp_path / "out"
    results = run_lm_hf.main(["--smoke", "--corpus_dir", str(corpus), "--output_dir", str(output)])
    assert [r["implementation"] for r in results] == ["sdpa", "las"]
    sdpa, las = results
    assert sdpa["parameters"] == las["parameters"]
    for r in results:
        assert len(r["samples"]) == len(run_lm_hf.PROMPTS) and r["test_perplexity"] < 2 * run_lm_hf.VOCAB_SIZE
    assert sdpa["test_perplexity"] != las["test_perplexity"]  # the attention differs, nothing else
    table = (output / "results.md").read_text()
    assert "| sdpa |" in table and "| las |" in table
    with pytest.raises(SystemExit):
        run_lm_hf.main(["--smoke", "--corpus_dir", str(corpus), "--implementations", "sdpa,linear"])
