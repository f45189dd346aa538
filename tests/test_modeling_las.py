"""LaSConfig, LaSModel and LaSForSequenceClassification: what is particular to them (the checks every head shares are
in `test_modeling_common.py`): configuration rules, the LaS matrices, losses, the dual encoder, pixels, module loading.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForSequenceClassification

from configuration_las import LaSConfig, UnknownConfigFieldError
from las_attention import las_attention_reference
from modeling_las import LaSForSequenceClassification, LaSModel
from tests.support.models import random_ids, tiny_config, tiny_model

REPO_ROOT = Path(__file__).resolve().parents[1]


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
    (dict(las_alpha_max=1e39), "LaSConfig.las_alpha_max=1e+39 is beyond float32's range"),  # inf in the model
    (dict(las_alphas=[0.0, 0.1, 1e39, 0.2]), "LaSConfig.las_alphas must hold finite numbers within float32's range"),
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


@pytest.mark.parametrize(
    "key,hint",
    [
        ("las_pool_sise", "did you mean 'las_pool_size'?"),
        ("las_window", ""),  # any las_* key that is no field
        ("atention_type", "did you mean 'attention_type'?"),
        ("num_attention_head", "did you mean 'num_attention_heads'?"),
        ("layer_norm_epsilon", "did you mean 'layer_norm_eps'?"),
    ],
)
def test_misspelt_fields_are_refused_on_every_route(tmp_path, key, hint):
    # A misspelt field was stored (constructor) or dropped (from_pretrained) without a word, and the model built with
    # the default value.
    routes = _bad_override_routes(tmp_path)
    for route, build in routes.items():
        with pytest.raises(UnknownConfigFieldError, match=f"LaSConfig has no field '{key}'") as error:
            build({key: 5})
        assert hint in str(error.value), route
        assert isinstance(error.value, TypeError) and isinstance(error.value, ValueError)
    with pytest.raises(UnknownConfigFieldError, match="las_pool_sise"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "checkpoint", las_pool_sise=5)


def test_transformers_own_and_unrelated_keys_still_pass(tmp_path):
    config = tiny_config(
        problem_type="multi_label_classification",
        output_hidden_states=True,
        id2label={0: "a", 1: "b", 2: "c"},
        bos_token_id=1,
        my_note="kept, as transformers keeps unknown keys",
    )
    config.save_pretrained(tmp_path)
    loaded = LaSConfig.from_pretrained(tmp_path, output_attentions=True, return_unused_kwargs=True, other_flag=1)
    config, unused = loaded
    assert config.my_note.startswith("kept") and config.output_attentions and unused == {"other_flag": 1}
    assert config.problem_type == "multi_label_classification" and config.id2label[2] == "c"


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


# -- the module itself ------------------------------------------------------------------------------------------------


def test_a_failing_sibling_import_is_not_masked_by_the_top_level_fallback(tmp_path, monkeypatch):
    # The fallback to top-level imports exists for one case only (no parent package). Inside a package (Hub remote
    # code), a sibling that fails to import must fail with its own error: it used to be hidden behind "No module named
    # 'configuration_las'", or silently replaced by another copy of the module found on sys.path.
    package = tmp_path / "las_checkpoint_code"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("modeling_las.py", "configuration_las.py", "las_attention.py", "image_processing_las.py"):
        shutil.copy(REPO_ROOT / name, package / name)
    broken = package / "las_attention.py"
    broken.write_text(broken.read_text() + "\nimport a_dependency_that_is_not_installed_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed_xyz"):
        importlib.import_module("las_checkpoint_code.modeling_las")
    for name in [name for name in sys.modules if name.startswith("las_checkpoint_code")]:
        monkeypatch.delitem(sys.modules, name)


def test_remote_code_files_import_nothing_beyond_torch_and_transformers():
    # Hub remote code checks every import a shipped file makes outside `try` blocks, and refuses to load when one is
    # missing: a checkpoint must load with torch + transformers alone (and what they install: numpy). A text
    # checkpoint ships image_processing_las.py too, so not even Pillow (imported lazily, inside `try`), and no HTTP
    # client beyond the standard library (`httpx` broke loading once huggingface_hub moved to `httpx2`).
    from transformers.dynamic_module_utils import get_imports

    allowed = set(sys.stdlib_module_names) | {"torch", "transformers", "numpy"}
    for name in ("modeling_las.py", "configuration_las.py", "las_attention.py", "image_processing_las.py"):
        extra = set(get_imports(REPO_ROOT / name)) - allowed
        assert not extra, f"{name} imports {sorted(extra)}, which a torch + transformers install may lack"
