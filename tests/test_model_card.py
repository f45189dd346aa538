"""Model cards rendered by hub_cards.model_card: metadata, content, and no invented numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard

from hub_cards.model_card import render_model_card
from tests.support.hub_server import LoopbackHub


def _listops_card(**overrides) -> ModelCard:
    arguments = dict(
        model_id="tester/las-listops",
        task="listops",
        attention_type="las",
        results={"test_accuracy": 0.5021, "eval_accuracy": 0.4987, "eval_loss": 1.2345},
        config={"hidden_size": 128, "num_hidden_layers": 4, "las_pool_size": 3, "las_alphas": [0.0, 0.01]},
        dataset_id="tester/lra-listops",
        training_args={"learning_rate": 0.0005, "per_device_train_batch_size": 50},
        machine="1x NVIDIA H100 80GB, 16 CPU cores",
        command="python examples/run_lra.py --task listops --output_dir runs/listops",
        paper_accuracy=53.05,
    )
    arguments.update(overrides)
    return render_model_card(**arguments)


def test_saved_card_parses_and_carries_measured_accuracy(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    _listops_card().save(path)
    card = ModelCard.load(path)

    assert card.data.license == "apache-2.0"
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-classification"
    assert {"las", "long-range-arena", "lra-listops"} <= set(card.data.tags)
    assert card.data.datasets == ["tester/lra-listops"]
    test_result, validation_result = card.data.eval_results
    assert test_result.metric_value == 0.5021
    assert (test_result.metric_type, test_result.dataset_split) == ("accuracy", "test")
    assert (test_result.task_type, test_result.dataset_name) == ("text-classification", "LRA ListOps")
    assert test_result.dataset_type == "tester/lra-listops"
    assert (validation_result.metric_value, validation_result.dataset_split) == (0.4987, "validation")
    # the paper's number is shown for comparison, never recorded as a result of this model
    assert all(result.metric_value != 53.05 for result in card.data.eval_results)


def test_template_renders_setup_results_and_citation() -> None:
    text = _listops_card().text
    assert "python examples/run_lra.py --task listops --output_dir runs/listops" in text
    assert "Machine: 1x NVIDIA H100 80GB, 16 CPU cores" in text
    assert "| test | 50.21% | 53.05% |" in text
    assert "| validation | 49.87% | - |" in text
    assert "| eval_loss | 1.2345 |" in text
    assert "| las_alphas | [0.0, 0.01] |" in text
    assert "| learning_rate | 0.0005 |" in text
    assert 'model_id = "tester/las-listops"' in text and "from_pretrained(model_id, trust_remote_code=True)" in text
    assert "AutoModelForSequenceClassification" in text
    assert "pages     = {62815--62831}" in text and "Zimerman, Itamar and Wolf, Lior" in text
    assert "Our interpretation" in text


def test_missing_results_say_not_evaluated_and_invent_nothing(tmp_path: Path) -> None:
    card = render_model_card(
        model_id="tester/las-pathx", task="Path-X", attention_type="las", results=None, config=None
    )
    card.save(tmp_path / "README.md")
    reloaded = ModelCard.load(tmp_path / "README.md")
    assert reloaded.data.eval_results is None
    assert "model-index" not in reloaded.content
    assert "Not evaluated" in reloaded.text
    assert reloaded.data.pipeline_tag == "image-classification"
    # with no numbers given, the card shows no accuracy at all
    assert re.search(r"\d\s*%", reloaded.text) is None


def test_image_tasks_are_image_classification() -> None:
    card = _listops_card(task="pathfinder", dataset_id=None)
    assert card.data.pipeline_tag == "image-classification"
    assert card.data.eval_results[0].task_type == "image-classification"
    assert card.data.eval_results[0].dataset_type == "lra-pathfinder"
    assert "pixel_values" in card.text


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="listops, text, retrieval, image, pathfinder, pathx"):
        _listops_card(task="imagenet")
    with pytest.raises(ValueError, match="fraction"):
        _listops_card(results={"test_accuracy": 50.21})  # a percentage where a fraction is expected
    with pytest.raises(ValueError, match="model_id"):
        _listops_card(model_id="")


def test_card_roundtrips_through_the_hub(loopback_hub: LoopbackHub) -> None:
    HfApi().create_repo("tester/las-listops")
    _listops_card().push_to_hub("tester/las-listops")
    assert b"value: 0.5021" in loopback_hub.files("tester/las-listops")["README.md"]
    card = ModelCard.load("tester/las-listops")
    assert card.data.eval_results[0].metric_value == 0.5021


def test_pmnist_card_is_not_called_an_lra_task_and_its_example_permutes(tmp_path: Path) -> None:
    card = _listops_card(model_id="tester/las-pmnist", task="pmnist", dataset_id=None, paper_accuracy=None)
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.eval_results[0].dataset_name == "pMNIST"
    assert "pmnist" in loaded.data.tags and "long-range-arena" not in loaded.data.tags
    assert "Long Range Arena" not in card.text.split("## What it is")[0]
    assert "Accuracy on pMNIST" in card.text
    # The example's image processor applies the pixel order (tests/test_image_processor.py checks it is lra's).
    assert "AutoImageProcessor" in card.text and "pMNIST's fixed pixel order" in card.text


def test_an_evaluation_only_card_says_it_trained_nothing() -> None:
    text = _listops_card(training_args=None, evaluated_model="runs/listops-las").text
    assert "it evaluated `runs/listops-las` as given" in text
    assert "Training arguments:" not in text
    assert "evaluated `" not in _listops_card().text  # a training run's card says nothing of the kind
