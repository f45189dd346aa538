"""The shared model tester: every head (`HEADS`) x every attention type x every backend, on the same checks.

As transformers' `ModelTesterMixin`: saving and reloading, remote code, padding, strict keywords, backends refused at
load, gradient checkpointing, dtype casts, `torch.compile` / `torch.export`, and (heads that generate) cache = no
cache. Attention types and backends come from the model modules, so a new one is tested as soon as it exists. What is
particular to one head lives in its own file (`test_modeling_las.py`, `test_causal_lm.py`, `test_image_processor.py`).
Combinations that compile (flex_attention, `torch.compile`) or start interpreters are marked slow.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from tests.support.models import (
    ATTENTION_TYPES,
    BLOCK_OUR_PACKAGE,
    HEADS,
    HeadCase,
    backend_params,
    left_padded_batch,
    run_where_package_is_not_installed,
)


@pytest.fixture(params=list(HEADS))
def case(request) -> HeadCase:
    return HEADS[request.param]


@pytest.fixture(params=ATTENTION_TYPES)
def attention_type(request) -> str:
    return request.param


def _close(got: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> bool:
    return bool((got.float() - expected.float()).abs().max() <= atol)


class TestEveryHead:
    """One tester for every head: each test runs for each `case` (see `HEADS`)."""

    def test_save_and_reload_give_identical_outputs(self, case: HeadCase, attention_type: str, tmp_path: Path):
        model = case.model(attention_type=attention_type)
        inputs, mask = case.padded_batch((17, 9), width=17, side="right")
        with torch.no_grad():
            expected = case.outputs(model, **inputs, attention_mask=mask)
        model.save_pretrained(tmp_path)
        auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
        assert auto_map[case.auto_class.__name__] == f"modeling_las.{case.model_class.__name__}"
        for loader in (case.auto_class, case.model_class):
            loaded = loader.from_pretrained(tmp_path).eval()
            assert type(loaded) is case.model_class
            with torch.no_grad():
                assert torch.equal(case.outputs(loaded, **inputs, attention_mask=mask), expected), loader

    @pytest.mark.parametrize("backend", backend_params())
    @pytest.mark.parametrize("side", ["right", "left"])
    def test_padding_invariance_on_every_backend(self, case: HeadCase, attention_type: str, backend: str, side: str):
        # A padded example gets the outputs it has alone (positions, chunks and pooling follow the mask), and every
        # backend gives the eager kernel's numbers.
        model = case.model(attention_type=attention_type, implementation=backend)
        reference = case.model(attention_type=attention_type, implementation="eager")
        lengths, width = (21, 13, 6), 21
        inputs, mask = case.padded_batch(lengths, width, side)
        with torch.no_grad():
            batched = case.outputs(model, **inputs, attention_mask=mask)
            for row, n in enumerate(lengths):
                where = slice(width - n, width) if side == "left" else slice(0, n)
                alone_inputs = {name: values[row : row + 1, ..., where] for name, values in inputs.items()}
                alone_mask = mask[row : row + 1, ..., where]
                extra = {} if bool(alone_mask.all()) else {"attention_mask": alone_mask}
                alone = case.outputs(reference, **alone_inputs, **extra)
                if case.per_position:
                    got, expected = batched[row, where], alone[0]
                else:
                    got, expected = batched[row], alone[0]
                assert _close(got, expected), (row, side, backend, attention_type)

    def test_misspelt_keywords_are_type_errors_naming_them(self, case: HeadCase):
        model = case.model()
        inputs, mask = case.padded_batch((9, 5), width=9, side="right")
        for keyword in ("attention_mas", "label", "output_hidden_state", "past_key_value"):
            with pytest.raises(TypeError, match=f"unexpected keyword argument '{keyword}'"):
                model(**inputs, **{keyword: mask})
        # What Trainer, pipelines and generate pass keeps working.
        with torch.no_grad():
            out = model(**inputs, attention_mask=mask, output_attentions=True, output_hidden_states=True)
            assert len(out.attentions) == len(out.hidden_states) - 1 == model.config.num_hidden_layers
            as_tuple = model(**inputs, attention_mask=mask, return_dict=False)
        assert isinstance(as_tuple, tuple) and _close(as_tuple[0], getattr(out, case.output))

    @pytest.mark.parametrize(
        "implementation", ["paged|eager", "paged|sdpa", "flash_attention_2", "kernels-community/flash-attn"]
    )
    def test_unsupported_attention_implementations_are_refused_at_load(
        self, case: HeadCase, implementation: str, tmp_path: Path
    ):
        # transformers' kernels know nothing of the LaS decay: a model must not load with one and fail (or compute
        # plain softmax attention) at its first forward.
        message = f"attn_implementation='{implementation}' is not supported by LaS models: use one of 'eager', 'sdpa'"
        with pytest.raises(ValueError, match=message.replace("|", r"\|")):
            case.auto_class.from_config(case.config(), attn_implementation=implementation)
        model = case.model()
        with pytest.raises(ValueError, match="not supported by LaS models"):
            model.set_attn_implementation(implementation)
        assert model.config._attn_implementation == "sdpa"
        model.save_pretrained(tmp_path)
        with pytest.raises(ValueError, match="not supported by LaS models"):
            case.auto_class.from_pretrained(tmp_path, attn_implementation=implementation)

    @pytest.mark.parametrize(
        "dtype,atol", [(torch.bfloat16, 0.1), (torch.float16, 0.05), (torch.float64, 1e-5)], ids=str
    )
    def test_dtype_casts(self, case: HeadCase, dtype: torch.dtype, atol: float, tmp_path: Path):
        reference = case.model()
        inputs, mask = case.padded_batch((13, 7, 1), width=13, side="left")
        with torch.no_grad():
            expected = case.outputs(reference, **inputs, attention_mask=mask)
        reference.save_pretrained(tmp_path)
        for model in (case.model().to(dtype), case.auto_class.from_pretrained(tmp_path, dtype=dtype).eval()):
            assert {p.dtype for p in model.parameters()} == {dtype}
            with torch.no_grad():
                got = case.outputs(model, **inputs, attention_mask=mask)
            assert got.dtype == dtype and torch.isfinite(got).all()
            keep = mask.bool()[..., None] if case.per_position else torch.ones(len(got), 1, dtype=torch.bool)
            assert ((got.float() - expected).abs() * keep).max() <= atol * max(1.0, expected.abs().max().item())
        # Training in half precision: a finite loss and finite gradients (also for the one-token row).
        model = case.model().to(dtype).train()
        case.outputs(model, **inputs, attention_mask=mask).float().pow(2).mean().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    @pytest.mark.slow  # a compilation per head and backend
    @pytest.mark.parametrize("backend", backend_params(fast=()))
    def test_torch_compile_gives_the_eager_outputs(self, case: HeadCase, backend: str):
        model = case.model(implementation=backend)
        inputs, mask = case.padded_batch((33, 20), width=33, side="right")
        compiled = torch.compile(model)
        with torch.no_grad():
            expected = case.outputs(model, **inputs, attention_mask=mask)
            assert _close(case.outputs(compiled, **inputs, attention_mask=mask), expected)

    @pytest.mark.slow  # compilations
    def test_fullgraph_compile_and_export_on_the_default_backend(self, case: HeadCase):
        # No data-dependent guard on the default (sdpa) path: the decay's maximum comes from the config.
        model = case.model()
        assert model.config._attn_implementation == "sdpa"
        inputs, mask = case.padded_batch((21, 14), width=21, side="right")
        with torch.no_grad():
            for kwargs in ({}, {"attention_mask": mask}):
                expected = case.outputs(model, **inputs, **kwargs)
                torch._dynamo.reset()
                assert _close(case.outputs(torch.compile(model, fullgraph=True), **inputs, **kwargs), expected)
                exported = torch.export.export(model, (), {**inputs, **kwargs})
                assert _close(case.outputs(exported.module(), **inputs, **kwargs), expected)


# Outside the class so that its node id has one `::`: examples/benchmarks/gpu_image_stack_on_cpu.sh deselects it by
# id on transformers releases without `activation_checkpointing_enable`.
def test_gradient_checkpointing_gives_the_same_gradients(case: HeadCase):
    inputs, mask = case.padded_batch((17, 11), width=17, side="right")
    gradients = []
    for checkpointing in (False, True):
        model = case.model().train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(layer.gradient_checkpointing for layer in model.base_model.layers)
        case.outputs(model, **inputs, attention_mask=mask).float().pow(2).mean().backward()
        gradients.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(gradients[0], gradients[1], atol=1e-6)


@pytest.mark.parametrize("case", [case for case in HEADS.values() if case.can_generate], ids=lambda case: case.name)
@pytest.mark.parametrize("backend", backend_params())
def test_generation_with_cache_equals_without(case: HeadCase, attention_type: str, backend: str):
    model = case.model(attention_type=attention_type, implementation=backend)
    ids, mask = left_padded_batch(lengths=(9, 6, 3), width=9)
    results = []
    with torch.no_grad():
        for use_cache in (True, False):
            results.append(
                model.generate(
                    ids,
                    attention_mask=mask,
                    max_new_tokens=7,
                    do_sample=False,
                    use_cache=use_cache,
                    output_logits=True,
                    return_dict_in_generate=True,
                )
            )
    cached, uncached = results
    assert torch.equal(cached.sequences, uncached.sequences)
    assert all(_close(a, b) for a, b in zip(cached.logits, uncached.logits, strict=True))


# -- remote code ------------------------------------------------------------------------------------------------------

REMOTE_EVERY_HEAD_SCRIPT = BLOCK_OUR_PACKAGE + textwrap.dedent(
    """
    import transformers
    manifest = json.load(open(sys.argv[1]))
    report = {"pillow_loaded": "PIL" in sys.modules}
    for name, entry in manifest.items():
        auto_class = getattr(transformers, entry["auto_class"])
        model = auto_class.from_pretrained(entry["folder"], trust_remote_code=True).eval()
        inputs = {key: torch.tensor(value) for key, value in entry["inputs"].items()}
        with torch.no_grad():
            output = getattr(model(**inputs), entry["output"])
            result = {"module": type(model).__module__, "output": output.tolist()}
            if entry["generate"]:
                result["generated"] = model.generate(**inputs, max_new_tokens=5, do_sample=False).tolist()
        report[name] = result
    report["pillow_loaded"] = report["pillow_loaded"] or "PIL" in sys.modules
    print(json.dumps(report))
    """
)


@pytest.mark.slow  # a fresh interpreter
def test_every_head_loads_as_remote_code_without_our_package_or_pillow(tmp_path: Path):
    # A checkpoint loads with torch, transformers and safetensors alone: Pillow is only needed to read images.
    manifest, expected = {}, {}
    for name, case in HEADS.items():
        model = case.model(attention_type="las_chunk")
        inputs, mask = case.padded_batch((17, 12), width=17, side="left" if case.can_generate else "right")
        inputs = {**inputs, "attention_mask": mask}
        folder = tmp_path / name
        model.save_pretrained(folder)
        with torch.no_grad():
            expected[name] = case.outputs(model, **inputs)
            if case.can_generate:
                expected[name + ".generated"] = model.generate(**inputs, max_new_tokens=5, do_sample=False)
        manifest[name] = {
            "folder": str(folder),
            "auto_class": case.auto_class.__name__,
            "inputs": {key: value.tolist() for key, value in inputs.items()},
            "output": case.output,
            "generate": case.can_generate,
        }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    report = run_where_package_is_not_installed(
        tmp_path, REMOTE_EVERY_HEAD_SCRIPT, tmp_path / "manifest.json", "--no-pillow"
    )
    assert report["pillow_loaded"] is False
    for name, case in HEADS.items():
        assert report[name]["module"].startswith("transformers_modules"), name
        assert torch.equal(torch.tensor(report[name]["output"]), expected[name]), name
        if case.can_generate:
            assert torch.equal(torch.tensor(report[name]["generated"]), expected[name + ".generated"])


# -- flex_attention compilations --------------------------------------------------------------------------------------


@pytest.mark.slow  # compiles flex_attention a few times
def test_flex_compiles_once_per_length_bucket_whatever_the_batch_size():
    # Dynamo stops compiling after 8 shapes and then runs flex unfused (the full L x L matrix): varied lengths are
    # bucketed, and the batch axis is dynamic, so that a last partial batch does not compile again.
    from torch._dynamo.utils import counters

    from las_attention import flex_bucket_length

    case = HEADS["sequence_classification"]
    model = case.model(implementation="flex_attention", max_position_embeddings=512, num_hidden_layers=1)
    reference = case.model(implementation="eager", max_position_embeddings=512, num_hidden_layers=1)
    shapes = [(8, 20), (8, 100), (3, 77), (8, 200), (5, 130), (8, 250), (2, 60), (7, 120), (8, 300), (1, 40)]
    shapes += [(6, 480), (4, 256)]
    torch._dynamo.reset()
    frames_before = counters["frames"]["total"]
    with torch.no_grad():
        for batch, length in shapes:
            inputs, mask = case.padded_batch([length] + [max(1, length // 2)] * (batch - 1), length, "right")
            got = case.outputs(model, **inputs, attention_mask=mask)
            assert _close(got, case.outputs(reference, **inputs, attention_mask=mask)), (batch, length)
    buckets = {flex_bucket_length(length) for _, length in shapes}
    assert buckets == {128, 256, 512}
    compilations = counters["frames"]["total"] - frames_before
    # One kernel per length bucket, and one more per bucket at most for batches of 1 (always specialised).
    assert compilations <= 2 * len(buckets), compilations
