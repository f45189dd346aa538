"""Model cards for LaS models trained on the Long Range Arena.

`render_model_card` fills `model_card_template.md` (next to this file) and returns a
`huggingface_hub.ModelCard` whose YAML header carries a `model-index` with the measured
accuracy, so the Hub shows it as an evaluation result. Every number on the card comes from the
arguments: when no accuracy is given, the card says "not evaluated" and has no `model-index`.

Example:

    card = render_model_card(
        model_id="me/las-listops",
        task="listops",
        attention_type="las",
        results={"test_accuracy": 0.5021, "eval_accuracy": 0.4987},
        config={"hidden_size": 128, "num_hidden_layers": 4, "las_pool_size": 3},
        command="python examples/run_lra.py --task listops",
        machine="1x NVIDIA H100",
        paper_accuracy=53.05,
    )
    card.save("README.md")   # or card.push_to_hub("me/las-listops")
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from lra.tasks import PAPER_SOURCE, TASK_SPECS, TaskSpec, normalize_task

TEMPLATE_PATH = Path(__file__).with_name("model_card_template.md")

LAS_CITATION = """\
@inproceedings{zimerman2024viewing,
  title     = {Viewing Transformers Through the Lens of Long Convolutions Layers},
  author    = {Zimerman, Itamar and Wolf, Lior},
  booktitle = {Proceedings of the 41st International Conference on Machine Learning},
  series    = {Proceedings of Machine Learning Research},
  volume    = {235},
  pages     = {62815--62831},
  publisher = {PMLR},
  year      = {2024}
}"""


def _token_example(texts: str) -> str:
    return (
        "tokenizer = AutoTokenizer.from_pretrained(model_id)  # saved with the model\n"
        f'inputs = tokenizer({texts}, return_tensors="pt")'
    )


def _pixel_example(side: int, permuted: bool = False) -> str:
    # pMNIST's pixel order (lra.pmnist_permutation()) is saved in the checkpoint's image processor.
    order = " in pMNIST's fixed pixel order" if permuted else ""
    return (
        f"# saved with the model: the grayscale rule of the training data, row by row{order}, scaled to [0, 1]\n"
        "image_processor = AutoImageProcessor.from_pretrained(model_id, trust_remote_code=True)\n"
        'inputs = image_processor(Image.open("example.png"), return_tensors="pt")'
        f"  # pixel_values of a {side}x{side} image"
    )


_RETRIEVAL_EXAMPLE = (
    "tokenizer = AutoTokenizer.from_pretrained(model_id)  # saved with the model\n"
    'documents = tokenizer(["text of the first paper", "text of the second paper"], padding=True, '
    'return_tensors="pt")\n'
    'inputs = {name: documents[name][None] for name in ("input_ids", "attention_mask")}  # (1, 2, length)'
)
#: The texts of the usage example of the token tasks (all other facts about a task come from ``lra.tasks``).
_EXAMPLE_TEXTS = {
    "listops": '["[MAX 2 9 [MIN 4 7 ] 0 ]"]',
    "text": '["A quiet, patient film that earns its ending."]',
}


def task_type(spec: TaskSpec) -> str:
    """Hub task type of the model-index entry, also used as the pipeline tag."""
    return "image-classification" if spec.input_kind == "pixels" else "text-classification"


def input_example(spec: TaskSpec) -> str:
    """Python lines that build `inputs` for the usage example (`model_id` and the imports are in scope)."""
    if spec.input_kind == "pair":
        return _RETRIEVAL_EXAMPLE
    if spec.input_kind == "tokens":
        return _token_example(_EXAMPLE_TEXTS[spec.name])
    return _pixel_example(math.isqrt(spec.default_length), permuted=spec.name == "pmnist")  # square images


def example_imports(spec: TaskSpec) -> str:
    """The import lines of the usage example."""
    if spec.input_kind == "pixels":
        return (
            "import torch\nfrom PIL import Image\n"
            "from transformers import AutoImageProcessor, AutoModelForSequenceClassification"
        )
    return "import torch\nfrom transformers import AutoModelForSequenceClassification, AutoTokenizer"


#: Known values of ``LaSConfig.attention_type``; another value is shown as given.
ATTENTION_TYPES: dict[str, tuple[str, str]] = {
    "las": (
        "LaS-attention",
        "This model uses LaS attention in every layer: softmax attention whose scaled scores are multiplied "
        "by a per-head exponential decay with distance, and whose attention matrix is smoothed by 1-D average "
        "pooling along each row.",
    ),
    "las_chunk": (
        "LaS-chunk-attention",
        "This model uses LaS-chunk attention: LaS attention applied inside non-overlapping chunks of the "
        "sequence, which makes its cost linear in the sequence length.",
    ),
    "softmax": (
        "softmax-attention (baseline)",
        "This model is the baseline of the LaS comparison: the same architecture with ordinary softmax "
        "attention (no decay, no smoothing).",
    ),
}

#: Result keys read as the accuracy of a split, in the order the model-index lists them.
_SPLIT_KEYS = (("test", ("test_accuracy",)), ("validation", ("eval_accuracy", "validation_accuracy")))


def _as_accuracy(name: str, value: Any) -> float:
    """A measured accuracy as a fraction in [0, 1] (what Trainer and evaluate report)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"results[{name!r}] must be a finite number, got {value!r}.")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"results[{name!r}] = {value} is not a fraction in [0, 1] (pass accuracies as fractions).")
    return float(value)


def _paper_percent(value: float | None) -> float | None:
    """The paper's accuracy in percent; a value of at most 1 is read as a fraction."""
    if value is None:
        return None
    if not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise ValueError(f"paper_accuracy must be a percentage (or a fraction), got {value!r}.")
    return value * 100.0 if value <= 1.0 else float(value)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"


def _cell(value: Any) -> str:
    """A value as markdown table cell text (floats to 6 significant digits)."""
    if isinstance(value, float):
        value = float(f"{value:.6g}")
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(values: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [(_cell(k), _cell(v)) for k, v in (values or {}).items()]


def _measured_splits(results: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """`(split, result key, accuracy)` for each split whose accuracy is in `results`."""
    found = []
    for split, keys in _SPLIT_KEYS:
        for key in keys:
            if results.get(key) is not None:
                found.append((split, key, _as_accuracy(key, results[key])))
                break
    return found


def render_model_card(
    *,
    model_id: str,
    task: str,
    attention_type: str,
    results: Mapping[str, Any] | None,
    config: Mapping[str, Any] | None,
    dataset_id: str | None = None,
    training_args: Mapping[str, Any] | None = None,
    machine: str | None = None,
    command: str | None = None,
    paper_accuracy: float | None = None,
    code_url: str | None = None,
    data_description: str | None = None,
    evaluated_model: str | None = None,
) -> ModelCard:
    """Render the model card of a LaS model trained on one LRA task.

    Args:
        model_id: the Hub repository id (`"user/name"`), used in the usage example.
        task: LRA task (listops, text, retrieval, image, pathfinder, pathx; `"Path-X"` works), or smnist,
            pmnist.
        attention_type: `LaSConfig.attention_type` (`"las"`, `"las_chunk"`, `"softmax"`).
        results: measured metrics, as `Trainer.evaluate` returns them: `"test_accuracy"` and
            `"eval_accuracy"` (fractions in [0, 1]) become model-index entries (test first);
            every other entry is listed under "Other measurements". `None` or no accuracy:
            the card says "not evaluated" and has no model-index.
        config: model hyperparameters to show (e.g. a subset of `LaSConfig.to_dict()`).
        dataset_id: the Hub dataset the model was trained and evaluated on, if any.
        training_args: training arguments to show (learning rate, batch size, epochs...).
        machine: the hardware the run used, as free text.
        command: the command line that trained the model.
        paper_accuracy: the LaS paper's accuracy on this task, in percent as published (a value
            of at most 1 is read as a fraction; `lra.TASK_SPECS[task].paper_accuracy`); shown next to
            the measured one with `lra.tasks.PAPER_SOURCE`, never in the model-index.
        code_url: URL of the las-transformers repository, for the pointer to its README.
        data_description: what the model was trained and evaluated on, as free text (e.g. a generated set smaller
            than the LRA task); shown above the results, so that a reader does not compare unlike numbers.
        evaluated_model: set for a run that evaluated an existing model without training it: the checkpoint (folder
            or Hub id) it evaluated. The card then says that this run trained nothing, instead of presenting a
            training setup.

    Returns:
        The card; `card.save(path)` writes README.md, `card.push_to_hub(repo_id)` uploads it.

    Raises:
        ValueError: unknown task, empty `model_id`, or an accuracy that is not a fraction.
    """
    if not model_id or not isinstance(model_id, str):
        raise ValueError("model_id must be a non-empty repository id.")
    task_key = normalize_task(task)
    lra_task = TASK_SPECS[task_key]
    attention_title, attention_description = ATTENTION_TYPES.get(
        attention_type, (f"{attention_type}-attention", f"This model uses attention_type `{attention_type}`.")
    )
    results = dict(results or {})
    measured = _measured_splits(results)
    paper = _paper_percent(paper_accuracy)
    model_name = model_id.split("/")[-1]
    dataset_type = dataset_id or f"lra-{task_key}"

    eval_results = [
        EvalResult(
            task_type=task_type(lra_task),
            task_name=lra_task.full_title,
            dataset_type=dataset_type,
            dataset_name=lra_task.full_title,
            dataset_config=task_key,
            dataset_split=split,
            metric_type="accuracy",
            metric_name="Accuracy",
            metric_value=value,
        )
        for split, _key, value in measured
    ]
    card_data = ModelCardData(
        model_name=model_name,
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=task_type(lra_task),
        tags=[
            "las",
            *(("long-range-arena", f"lra-{task_key}") if lra_task.in_lra else (task_key,)),
            attention_type,
            "custom_code",
        ],
        datasets=[dataset_id] if dataset_id else None,
        metrics=["accuracy"],
        eval_results=eval_results or None,
    )

    used_keys = {key for _split, key, _value in measured}
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        model_id=model_id,
        model_name=model_name,
        task_title=lra_task.title,
        task_full_title=lra_task.full_title,
        in_lra=lra_task.in_lra,
        task_description=f"{lra_task.summary}, {len(lra_task.labels)} classes",
        attention_type=attention_type,
        attention_title=attention_title,
        attention_description=attention_description,
        dataset_id=dataset_id,
        dataset_url=f"https://huggingface.co/datasets/{dataset_id}" if dataset_id else None,
        input_example=input_example(lra_task),
        example_imports=example_imports(lra_task),
        results_rows=[
            {
                "split": split,
                "measured": _percent(value),
                # the paper reports test accuracy only
                "paper": f"{paper:.2f}%" if paper is not None and split == "test" else "-",
            }
            for split, _key, value in measured
        ],
        other_results=[(k, v) for k, v in _rows(results) if k not in used_keys],
        paper_accuracy=f"{paper:.2f}%" if paper is not None else None,
        paper_source=PAPER_SOURCE,
        config_rows=_rows(config),
        training_rows=_rows(training_args),
        command=command,
        machine=machine,
        code_url=code_url,
        data_description=data_description,
        evaluated_model=evaluated_model,
        citation=LAS_CITATION,
    )
