"""LaSConfig, LaSModel and LaSForSequenceClassification: values, HF conventions, loading, precision, compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from configuration_las import LaSConfig
from las_attention import las_attention_reference
from modeling_las import LaSForSequenceClassification, LaSModel

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**overrides) -> LaSConfig:
    values = dict(
        vocab_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        num_labels=3,
        las_alpha_max=0.2,
        las_pool_size=3,
        attention_query_block_size=16,
    )
    values.update(overrides)
    return LaSConfig(**values)


def tiny_model(seed=0, **overrides) -> LaSForSequenceClassification:
    torch.manual_seed(seed)
    return LaSForSequenceClassification(tiny_config(**overrides)).eval()


def random_ids(*shape, vocab=16, seed=1) -> torch.Tensor:
    return torch.randint(1, vocab, shape, generator=torch.Generator().manual_seed(seed))


# -- configuration ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(hidden_size=30, num_attention_heads=4), "hidden_size=30 must be divisible by num_attention_heads=4"),
        (dict(las_pool_size=4), "las_pool_size=4 must be odd"),
        (dict(las_pool_size=0), "las_pool_size=0 must be a positive odd integer"),
        (dict(las_pool_size=-3), "las_pool_size=-3 must be a positive odd integer"),
        (dict(las_alphas=[0.0, 0.1]), "las_alphas has 2 values but num_attention_heads=4"),
        (dict(las_alphas=[0.0, 0.1, -0.5, 0.2]), "las_alphas must all be >= 0"),
        (dict(las_alpha_max=-0.1), "las_alpha_max=-0.1 must be >= 0"),
        (dict(las_chunk_size=0), "las_chunk_size=0 must be an integer >= 1"),
        (dict(attention_type="linear"), "attention_type='linear' is not one of"),
        (dict(position_embedding_type="rope"), "position_embedding_type='rope' is not one of"),
        (dict(las_pool_mode="left"), "las_pool_mode='left' is not one of"),
        (dict(norm_type="rmsnorm"), "norm_type='rmsnorm' is not one of"),
        (dict(classifier_pooling="max"), "classifier_pooling='max' is not one of"),
        (dict(input_type="audio"), "input_type='audio' is not one of"),
        (dict(num_hidden_layers=0), "num_hidden_layers=0 must be a positive integer"),
        (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob=1.5 must lie in"),
    ],
)
def test_config_rules_raise(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        tiny_config(**overrides)


BAD_OVERRIDES = [
    (dict(attention_type="bogus"), "LaSConfig.attention_type='bogus' is not one of"),
    (dict(num_attention_heads=5), "LaSConfig.hidden_size=32 must be divisible by num_attention_heads=5"),
    (dict(las_alpha_max=float("inf")), "LaSConfig.las_alpha_max=inf must be finite"),
    (dict(las_alpha_max=float("nan")), "LaSConfig.las_alpha_max=nan must be finite"),
    (dict(las_alphas=[0.0, 0.1, float("inf"), 0.2]), "LaSConfig.las_alphas must hold finite numbers"),
    (dict(las_alpha_max="0.1"), "LaSConfig.las_alpha_max='0.1' must be a number, not str"),
    (dict(hidden_dropout_prob="high"), "LaSConfig.hidden_dropout_prob='high' must be a number, not str"),
    (dict(las_pool_size=2.0), "LaSConfig.las_pool_size=2.0 must be a positive odd integer"),
    (dict(hidden_act="swishy"), "LaSConfig.hidden_act='swishy' is not an activation of"),
    (dict(is_causal="yes"), "LaSConfig.is_causal='yes' must be true or false"),
    (dict(layer_norm_eps=0.0), "LaSConfig.layer_norm_eps=0.0 must be > 0"),
]


def _bad_override_routes(tmp_path):
    """Every way a user builds a config (or a model) with an override, as zero-argument callables."""
    folder = tmp_path / "checkpoint"
    tiny_model().save_pretrained(folder)
    base = tiny_config().to_dict()

    def assign(overrides):
        config = tiny_config()
        for key, value in overrides.items():
            setattr(config, key, value)
        return LaSForSequenceClassification(config)  # a cross-field rule is checked when the model is built

    return {
        "constructor": lambda overrides: tiny_config(**overrides),
        "from_pretrained": lambda overrides: AutoModelForSequenceClassification.from_pretrained(folder, **overrides),
        "config.from_pretrained": lambda overrides: LaSConfig.from_pretrained(folder, **overrides),
        "AutoConfig": lambda overrides: AutoConfig.from_pretrained(folder, **overrides),
        "from_dict": lambda overrides: LaSConfig.from_dict(base, **overrides),
        "from_dict values": lambda overrides: LaSConfig.from_dict({**base, **overrides}),
        "AutoConfig.for_model": lambda overrides: AutoConfig.for_model(
            "las", **{"hidden_size": 32, "num_attention_heads": 4, **overrides}
        ),
        "attribute": assign,
    }


def test_bad_overrides_raise_the_same_named_error_on_every_route(tmp_path):
    routes = _bad_override_routes(tmp_path)
    for overrides, message in BAD_OVERRIDES:
        for route, build in routes.items():
            with pytest.raises(ValueError) as error:
                build(overrides)
            assert message in str(error.value), (route, overrides, str(error.value))


def test_valid_overrides_may_change_related_fields_together(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(
        tmp_path, hidden_size=60, num_attention_heads=6, las_alphas=[0, 1, 2, 3, 4, 5], ignore_mismatched_sizes=True
    )
    assert (model.config.hidden_size, model.config.num_attention_heads) == (60, 6)
    config = tiny_config()
    config.hidden_size, config.num_attention_heads = (
        60,
        6,
    )  # an invalid state in between is fine until a model is built
    assert LaSModel(config).config.head_alphas[0] == 0.0
    with pytest.raises(ValueError, match="LaSConfig.las_alpha_max=inf must be finite"):
        config.las_alpha_max = float("inf")  # a rule of one field is checked at once
    assert config.las_alpha_max == 0.2  # and the bad value is not kept


def test_misspelt_keyword_raises_type_error_naming_it():
    model = tiny_model()
    ids = random_ids(2, 9)
    for module in (model, model.las):
        with pytest.raises(TypeError, match="unexpected keyword argument 'attention_masks'"):
            module(input_ids=ids, attention_masks=torch.ones_like(ids))
    # What Trainer and pipelines pass keeps working.
    out = model(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        labels=torch.tensor([0, 1]),
        return_dict=True,
        output_attentions=False,
        output_hidden_states=False,
    )
    assert out.loss is not None and model(ids, return_dict=False)[0].shape == (2, 3)


def test_config_alphas_and_round_trip(tmp_path):
    config = tiny_config(num_attention_heads=8, hidden_size=64, las_alpha_max=0.5, las_alpha_decades=2.0)
    alphas = config.head_alphas
    assert alphas[0] == 0.0 and alphas[-1] == pytest.approx(0.5) and alphas[1] == pytest.approx(0.005)
    ratios = [alphas[i + 1] / alphas[i] for i in range(1, 7)]
    assert max(ratios) == pytest.approx(min(ratios))  # log-uniform spacing
    assert tiny_config(las_alphas=[0.0, 1.0, 2.0, 3.0]).head_alphas == [0.0, 1.0, 2.0, 3.0]
    assert tiny_config(attention_type="softmax").head_alphas == [0.0] * 4
    assert tiny_config(attention_type="softmax").effective_pool_size == 1
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, LaSConfig) and loaded.head_alphas == alphas


# -- values -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        dict(),
        dict(is_causal=False, las_pool_mode="causal"),
        dict(attention_type="las_chunk", las_chunk_size=8),
        dict(attention_type="softmax", classifier_pooling="last"),
        dict(position_embedding_type="learned", classifier_pooling="first", prenorm=False),
        dict(norm_type="batchnorm"),
    ],
)
def test_padding_invariance(overrides):
    model = tiny_model(**overrides)
    ids = random_ids(3, 40)
    lengths = [40, 23, 9]
    mask = torch.zeros(3, 40, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    padded_ids = ids * mask  # padding token 0 after each sequence
    with torch.no_grad():
        batched = model(padded_ids, attention_mask=mask).logits
        for row, n in enumerate(lengths):
            alone = model(ids[row : row + 1, :n]).logits
            assert torch.allclose(batched[row], alone[0], atol=1e-5), (row, overrides)


def test_output_attentions_are_the_smoothed_las_matrix():
    model = tiny_model(is_causal=True, las_pool_size=5)
    ids = random_ids(2, 30)
    mask = torch.ones(2, 30, dtype=torch.long)
    mask[1, 21:] = 0
    with torch.no_grad():
        out = model(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
        assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 4, 30, 30)
        assert len(out.hidden_states) == 3
        layer = model.las.layers[0]
        x = layer.attention_norm(out.hidden_states[0])
        heads = lambda t: t.view(2, 30, 4, 8).transpose(1, 2)  # noqa: E731
        q, k, v = heads(layer.attention.q_proj(x)), heads(layer.attention.k_proj(x)), heads(layer.attention.v_proj(x))
        expected = las_attention_reference(q, k, v, layer.attention.alphas, 5, "symmetric", True, mask)
        masked_v = v * mask[:, None, :, None]
        assert torch.allclose(out.attentions[0] @ masked_v, expected, atol=1e-5)


def test_losses_for_every_problem_type():
    ids = random_ids(4, 12)
    model = tiny_model()
    labels = torch.tensor([0, 2, 1, 1])
    out = model(ids, labels=labels)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, labels))

    model = tiny_model(problem_type="multi_label_classification")
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    out = model(ids, labels=multi)
    assert torch.allclose(out.loss, F.binary_cross_entropy_with_logits(out.logits, multi))

    model = tiny_model(num_labels=1)
    target = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out = model(ids, labels=target)
    assert out.logits.shape == (4, 1)
    assert torch.allclose(out.loss, F.mse_loss(out.logits.squeeze(-1), target))


def test_dual_encoder_classifies_u_v_features():
    model = tiny_model(dual_encoder=True, num_labels=2)
    ids = random_ids(2, 2, 20)
    mask = torch.ones(2, 2, 20, dtype=torch.long)
    mask[0, 1, 12:] = 0
    with torch.no_grad():
        out = model(ids, attention_mask=mask)
        assert out.logits.shape == (2, 2)
        # Both documents go through the same encoder: document v, padded, encodes as v alone at its true length.
        hidden = model.las(ids, attention_mask=mask).last_hidden_state
        assert hidden.shape == (2, 2, 20, 32)
        v_alone = model.las(ids[0:1, 1:2, :12].expand(1, 2, 12)).last_hidden_state
        assert torch.allclose(hidden[0, 1, :12], v_alone[0, 0], atol=1e-5)
        assert torch.allclose(v_alone[0, 0], v_alone[0, 1])
        keep = mask[..., None].float()
        pooled = (hidden * keep).sum(-2) / keep.sum(-2)
        u, v = pooled[:, 0], pooled[:, 1]
        features = torch.cat([u, v, u * v, u - v], -1)
        assert torch.allclose(model.classifier(features), out.logits, atol=1e-5)
        swapped = model(ids.flip(1), attention_mask=mask.flip(1)).logits
        assert not torch.allclose(swapped, out.logits)  # [u, v, uv, u-v] is ordered
    with pytest.raises(ValueError, match=r"\(batch, 2, length\)"):
        model(random_ids(2, 20))


def test_pixel_inputs():
    model = tiny_model(input_type="pixels", num_labels=10, max_position_embeddings=64)
    pixels = torch.rand(2, 64)
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="pass pixel_values"):
        model(random_ids(2, 64))
    for bad in (float("nan"), float("inf")):  # would make every logit NaN without a word
        broken = pixels.clone()
        broken[1, 5] = bad
        with pytest.raises(ValueError, match="pixel_values contain NaN or infinite values"):
            model(pixel_values=broken)


def test_inputs_start_on_the_scale_of_the_position_table():
    # Token vectors must not be a 2% perturbation of the unit-amplitude sinusoidal positions (see _init_weights).
    torch.manual_seed(0)
    tokens = LaSModel(LaSConfig(vocab_size=200, hidden_size=64, num_attention_heads=4))
    pixels = LaSModel(LaSConfig(input_type="pixels", hidden_size=256, num_attention_heads=4))
    assert 0.9 < tokens.embeddings.token_embeddings.weight.std().item() < 1.1
    assert 0.8 < pixels.embeddings.pixel_projection.weight.std().item() < 1.2
    assert 0.015 < tokens.layers[0].attention.q_proj.weight.std().item() < 0.025


def test_bad_inputs_raise_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, vocab_size=16\)"):
        model(torch.tensor([[1, 2, 99]]))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=128"):
        model(random_ids(1, 129))
    with pytest.raises(ValueError, match="attention_mask shape"):
        model(random_ids(2, 10), attention_mask=torch.ones(2, 11))
    with pytest.raises(ValueError, match="Pass exactly one of input_ids"):
        model()


# -- loading ----------------------------------------------------------------------------------------------------------


def test_save_and_load_through_auto_classes(tmp_path):
    model = tiny_model(attention_type="las_chunk", las_chunk_size=8, position_embedding_type="sinusoidal")
    ids = random_ids(2, 21)
    with torch.no_grad():
        expected = model(ids).logits
        hidden = model.las(ids).last_hidden_state
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"model.safetensors", "config.json", "modeling_las.py", "configuration_las.py", "las_attention.py"} <= files
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_las.LaSConfig",
        "AutoModel": "modeling_las.LaSModel",
        "AutoModelForSequenceClassification": "modeling_las.LaSForSequenceClassification",
        "AutoModelForCausalLM": "modeling_las.LaSForCausalLM",
    }
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, LaSForSequenceClassification)
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(base, LaSModel)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, expected)
        assert torch.equal(base(ids).last_hidden_state, hidden)


BLOCK_OUR_PACKAGE = textwrap.dedent(
    """
    import importlib.abc, json, sys
    import torch

    class BlockOurPackage(importlib.abc.MetaPathFinder):
        # Simulate a machine where las-transformers is not installed.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("modeling_las", "configuration_las", "las_attention", "lra", "hub_cards"):
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, BlockOurPackage())
    try:
        import las_attention  # noqa: F401
        raise SystemExit("our package is importable: the test would prove nothing")
    except ImportError:
        pass
    """
)

REMOTE_CODE_SCRIPT = BLOCK_OUR_PACKAGE + textwrap.dedent(
    """
    from transformers import AutoModel, AutoModelForSequenceClassification
    folder, ids_path = sys.argv[1], sys.argv[2]
    ids = torch.tensor(json.load(open(ids_path)))
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    eager = AutoModelForSequenceClassification.from_pretrained(
        folder, trust_remote_code=True, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        print(json.dumps({
            "logits": model(ids).logits.tolist(),
            "eager_logits": eager(ids).logits.tolist(),
            "implementation": model.config._attn_implementation,
            "hidden": base(ids).last_hidden_state.sum().item(),
            "module": type(model).__module__,
        }))
    """
)


def run_where_package_is_not_installed(tmp_path: Path, script: str, folder: Path, ids: torch.Tensor) -> dict:
    """Run `script` (which starts with BLOCK_OUR_PACKAGE) on `folder` and `ids`; return the JSON of its last line."""
    (tmp_path / "ids.json").write_text(json.dumps(ids.tolist()))
    (tmp_path / "load.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(tmp_path / "load.py"), str(folder), str(tmp_path / "ids.json")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh interpreter
def test_remote_code_loads_where_package_is_not_installed(tmp_path):
    model = tiny_model(attention_type="las", las_pool_mode="causal")
    ids = random_ids(2, 17)
    with torch.no_grad():
        expected = model(ids).logits
        hidden = model.las(ids).last_hidden_state.sum().item()
    folder = tmp_path / "checkpoint"
    model.save_pretrained(folder)
    report = run_where_package_is_not_installed(tmp_path, REMOTE_CODE_SCRIPT, folder, ids)
    assert report["module"].startswith("transformers_modules")
    assert report["implementation"] == "sdpa"  # the default backend, through the shipped las_attention.py
    assert torch.equal(torch.tensor(report["logits"]), expected)
    assert torch.allclose(torch.tensor(report["eager_logits"]), expected, atol=1e-5)
    assert report["hidden"] == pytest.approx(hidden, abs=0)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attention_type="las"),
        dict(attention_type="las", las_pool_mode="causal", las_alphas=[0.0, 0.1, 0.5, 1.0]),
        dict(attention_type="las_chunk", las_chunk_size=16),
        dict(attention_type="softmax"),
    ],
)
def test_sdpa_backend_is_the_default_and_matches_eager(tmp_path, overrides):
    model = tiny_model(**overrides)
    assert model.config._attn_implementation == "sdpa"
    model.save_pretrained(tmp_path)
    eager = AutoModelForSequenceClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config._attn_implementation == "sdpa"
    ids = random_ids(3, 40)
    mask = torch.ones(3, 40, dtype=torch.long)
    mask[1, 29:] = 0  # right padding
    mask[2, :7] = 0  # left padding
    with torch.no_grad():
        for kwargs in (dict(attention_mask=mask), dict()):
            assert torch.allclose(reloaded(ids, **kwargs).logits, eager(ids, **kwargs).logits, atol=1e-5)
    # Switching backends on a built model, as transformers models allow.
    eager.set_attn_implementation("sdpa")
    assert eager.config._attn_implementation == "sdpa"


def test_softmax_model_runs_on_torch_sdpa_itself(monkeypatch):
    # attention_type="softmax" with the sdpa backend is F.scaled_dot_product_attention(is_causal=True) and nothing
    # else: every "LaS vs softmax" comparison is against the kernel a user of softmax attention would run.
    import las_attention as kernels

    calls = []
    real_sdpa = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_sdpa(*args, **kwargs)

    monkeypatch.setattr(kernels.F, "scaled_dot_product_attention", spy)
    model = tiny_model(attention_type="softmax")
    with torch.no_grad():
        model(random_ids(2, 20))
    assert len(calls) == model.config.num_hidden_layers
    assert all(call.get("is_causal") is True and call.get("attn_mask") is None for call in calls)


def test_flex_attention_backend_matches_eager_model(tmp_path):
    model = tiny_model(attention_type="las_chunk", las_chunk_size=16)
    model.save_pretrained(tmp_path)
    flex = AutoModelForSequenceClassification.from_pretrained(tmp_path, attn_implementation="flex_attention").eval()
    assert flex.config._attn_implementation == "flex_attention"
    ids = random_ids(2, 40)
    mask = torch.ones(2, 40, dtype=torch.long)
    mask[1, 29:] = 0
    with torch.no_grad():
        assert torch.allclose(flex(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits, atol=1e-5)
        # no padding, and chunks that tile the sequence: nothing to mask but causality
        assert torch.allclose(flex(ids[:, :32]).logits, model(ids[:, :32]).logits, atol=1e-5)


# -- training features ------------------------------------------------------------------------------------------------


def test_gradient_checkpointing_gives_the_same_gradients():
    ids, labels = random_ids(2, 40), torch.tensor([0, 2])
    grads = []
    for checkpointing in (False, True):
        model = tiny_model().train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.las.layers)
        model(ids, labels=labels).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_without_nan_even_for_fully_padded_rows(dtype):
    model = tiny_model().to(dtype)
    ids = random_ids(3, 24)
    mask = torch.ones(3, 24, dtype=torch.long)
    mask[1, 10:] = 0
    mask[2] = 0  # a fully padded row
    out = model.train()(ids, attention_mask=mask, labels=torch.tensor([0, 1, 2]))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    reference = tiny_model().eval()
    with torch.no_grad():
        full = reference(ids, attention_mask=mask).logits
    assert (model.eval()(ids, attention_mask=mask).logits.float() - full).abs().max() < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("implementation", ["eager", "sdpa", "flex_attention"])
def test_works_under_torch_compile(implementation):
    model = tiny_model()
    model.set_attn_implementation(implementation)
    ids = random_ids(2, 33)
    mask = torch.ones(2, 33, dtype=torch.long)
    mask[1, 20:] = 0
    compiled = torch.compile(model)
    with torch.no_grad():
        expected = model(ids, attention_mask=mask).logits
        assert torch.allclose(compiled(ids, attention_mask=mask).logits, expected, atol=1e-5)


@pytest.mark.slow
def test_flex_compiles_a_bounded_number_of_times_over_many_lengths():
    # Variable lengths must not recompile flex every time (dynamo would give up after 8 and run flex uncompiled,
    # materialising the full matrix): lengths are bucketed to powers of two, one compilation per bucket.
    from torch._dynamo.utils import counters

    from las_attention import flex_bucket_length

    torch._dynamo.reset()
    model = tiny_model(max_position_embeddings=512)
    model.set_attn_implementation("flex_attention")
    lengths = (20, 41, 77, 101, 120, 129, 200, 255, 300, 480)
    reference = tiny_model(max_position_embeddings=512)
    reference.set_attn_implementation("eager")
    compiled_before = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        for length in lengths:
            ids = random_ids(2, length)
            assert torch.allclose(model(ids).logits, reference(ids).logits, atol=1e-5)
    buckets = {flex_bucket_length(length) for length in lengths}
    assert buckets == {128, 256, 512}
    assert counters["stats"]["unique_graphs"] - compiled_before <= len(buckets)


def test_return_dict_false_gives_tuples():
    model = tiny_model()
    out = model(random_ids(2, 10), labels=torch.tensor([0, 1]), return_dict=False)
    assert isinstance(out, tuple) and out[1].shape == (2, 3)
