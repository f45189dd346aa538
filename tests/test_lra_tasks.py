"""The task registry (lra.tasks) is what the builders, tokenizers, Hub sources, cards and configs say; and the one
integer check (lra.validation)."""

from __future__ import annotations

import json
import math

import pytest

import lra
from lra import builders, tasks
from lra.hub_data import HUB_SOURCES
from lra.validation import check_int
from tests.utils import EXAMPLES


@pytest.mark.parametrize("task", tasks.TASKS)
def test_builders_and_task_info_say_what_the_registry_says(task: str) -> None:
    spec = tasks.TASK_SPECS[task]
    builder = builders.builder_class(task)
    default_config = lra.resolve_config_name(task)
    assert builder.label_names(default_config) == spec.labels
    info = lra.task_info(task)
    assert (info.label_names, info.input_kind, info.max_length) == (spec.labels, spec.input_kind, spec.default_length)
    if spec.input_kind == "pixels":
        assert not spec.text_columns and math.isqrt(spec.default_length) ** 2 == spec.default_length  # square images
        feature = builder(config_name=default_config).info.features["pixels"]
        assert feature.length == spec.default_length
    else:
        assert lra.get_tokenizer(task).model_max_length == spec.default_length
        assert set(spec.text_columns) < set(builder(config_name=default_config).info.features)


def test_pathfinder_configs_and_generator_use_the_registry_constants() -> None:
    from lra import pathfinder

    for resolution in tasks.PATHFINDER_RESOLUTIONS:
        for difficulty, folder in tasks.PATHFINDER_DIFFICULTIES.items():
            config = builders.PathfinderBuilder.builder_configs[
                builders.pathfinder_config_name(resolution, difficulty)
            ]
            assert config.folder == f"pathfinder{resolution}/{folder}"
            assert pathfinder.pathfinder_params(resolution, difficulty).resolution == resolution
    assert builders.PathfinderBuilder.builder_configs["pathx"].resolution == tasks.PATHX_RESOLUTION
    assert lra.task_info("pathx").max_length == tasks.PATHX_RESOLUTION**2


def test_hub_sources_and_generated_tasks() -> None:
    assert {task: source.repo_id for task, source in HUB_SOURCES.items()} == {
        name: spec.hub_repo for name, spec in tasks.TASK_SPECS.items() if spec.hub_repo
    }
    assert [name for name, spec in tasks.TASK_SPECS.items() if spec.generated] == ["listops", "pathfinder"]
    assert tasks.LRA_TASKS == ("listops", "text", "retrieval", "image", "pathfinder", "pathx")
    assert lra.TASKS == tasks.TASKS == (*tasks.LRA_TASKS, "smnist", "pmnist")


def test_task_configs_agree_with_the_registry_lengths() -> None:
    """examples/configs/<task>.json are data (JSON): where one names a max_length, it is the task's default."""
    for task in tasks.TASKS:
        path = EXAMPLES / "configs" / f"{task}.json"
        max_length = json.loads(path.read_text()).get("data", {}).get("max_length")
        assert max_length in (None, tasks.TASK_SPECS[task].default_length), path


def test_paper_numbers_are_the_published_averages() -> None:
    for model, row in tasks.PAPER_ACCURACY.items():
        scores = [row[task] for task in tasks.LRA_TASKS if row[task] is not None]
        assert round(sum(scores) / len(scores), 2) == tasks.PAPER_LRA_AVERAGE[model], model
    assert tasks.TASK_SPECS["listops"].paper_accuracy == 53.05 and tasks.TASK_SPECS["pathx"].paper_accuracy is None
    assert "not re-read from the PDF" in tasks.PAPER_SOURCE


def test_normalize_task_and_titles() -> None:
    assert tasks.normalize_task("Path-X") == "pathx" and tasks.normalize_task("list_ops") == "listops"
    with pytest.raises(ValueError, match="valid tasks are listops, text"):
        tasks.normalize_task("imagenet")
    assert tasks.TASK_SPECS["pathx"].full_title == "LRA Path-X" and tasks.TASK_SPECS["smnist"].full_title == "sMNIST"
    assert tasks.TASK_SPECS["image"].chance_level == 0.1 and tasks.TASK_SPECS["text"].chance_level == 0.5


@pytest.mark.parametrize(
    "value, least, message",
    [
        (0, 1, "n must be an int >= 1, got 0 (why)"),
        (-1, 0, "n must be an int >= 0, got -1 (why)"),
        (True, 1, "n must be an int >= 1, got True"),  # a bool is not a count
        (2.0, 1, "n must be an int >= 1, got 2.0"),
        ("3", 1, "n must be an int >= 1, got '3'"),
    ],
)
def test_check_int_names_the_value_and_the_bound(value, least: int, message: str) -> None:
    with pytest.raises(ValueError) as error:
        check_int("n", value, least=least, why=" (why)")
    assert str(error.value) == message
    assert check_int("n", least + 3, least=least) == least + 3
