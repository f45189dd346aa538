"""The shipped evaluate metric lra/lra_accuracy: offline loading, values, LRA averages."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from lra import tasks
from tests.utils import REPO_ROOT

METRIC_DIR = REPO_ROOT / "lra" / "lra_accuracy"

# The published rows of the task registry (lra.tasks.PAPER_ACCURACY): per-task accuracy (%) under the tables' column
# names ("fail" for a failed Path-X), then the published "Avg" column.
TABLE_COLUMNS = [tasks.TASK_SPECS[task].title for task in tasks.LRA_TASKS]
PUBLISHED_ROWS = {
    model: (
        [row[task] if row[task] is not None else "fail" for task in tasks.LRA_TASKS],
        tasks.PAPER_LRA_AVERAGE[model],
    )
    for model, row in tasks.PAPER_ACCURACY.items()
}


@pytest.fixture(scope="session", autouse=True)
def private_evaluate_modules_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep evaluate's copy of the metric script out of ~/.cache for this session.

    evaluate imports loaded scripts as the package `evaluate_modules`, found through a folder it
    appends to sys.path once. If some earlier test already imported that package, its folder has
    to stay (a new one would not be searched), so only a fresh process is redirected.
    """
    import evaluate.config

    if "evaluate_modules" in sys.modules:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate.config, "HF_MODULES_CACHE", tmp_path_factory.mktemp("hf-modules"))
        yield


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1, also in the constants the libraries read when they were imported."""
    import datasets.config
    import evaluate.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)


def load_metric(tmp_path: Path, config_name: str | None = None):
    import evaluate

    return evaluate.load(str(METRIC_DIR), config_name, keep_in_memory=True, cache_dir=str(tmp_path))


def metric_module(metric) -> ModuleType:
    """The module evaluate imported the metric from (a copy of lra_accuracy.py)."""
    return sys.modules[type(metric).__module__]


def test_loads_offline_and_matches_hand_computation(offline: None, tmp_path: Path) -> None:
    metric = load_metric(tmp_path, "listops")
    assert metric.name == "lra_accuracy"
    predictions = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    references = [0, 1, 2, 3, 4, 5, 6, 0, 0, 0]  # 7 of 10 right
    assert metric.compute(predictions=predictions, references=references) == {
        "accuracy": pytest.approx(0.7),
        "listops_accuracy": pytest.approx(0.7),
    }


def test_task_from_compute_and_aliases(offline: None, tmp_path: Path) -> None:
    metric = load_metric(tmp_path)
    assert metric.compute(predictions=[1, 0, 1, 1], references=[1, 0, 0, 1]) == {"accuracy": 0.75}
    result = metric.compute(predictions=[1, 1], references=[1, 0], task="Path-X")
    assert result == {"accuracy": 0.5, "pathx_accuracy": 0.5}
    # add_batch accumulates like any evaluate metric
    metric.add_batch(predictions=[1, 1], references=[1, 1])
    metric.add_batch(predictions=[0, 0], references=[1, 0])
    assert metric.compute(task="text") == {"accuracy": 0.75, "text_accuracy": 0.75}


def test_bad_task_names_list_the_valid_ones(offline: None, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="listops, text, retrieval, image, pathfinder, pathx"):
        load_metric(tmp_path, "imagenet")
    metric = load_metric(tmp_path)
    with pytest.raises(ValueError, match="valid tasks are"):
        metric.compute(predictions=[0], references=[0], task="path-y")
    with pytest.raises(ValueError, match="valid tasks are"):
        metric.lra_average({"listopz": 40.0})


@pytest.mark.parametrize("row", sorted(PUBLISHED_ROWS))
def test_lra_average_reproduces_published_avg(offline: None, tmp_path: Path, row: str) -> None:
    scores, published = PUBLISHED_ROWS[row]
    result = load_metric(tmp_path).lra_average(dict(zip(TABLE_COLUMNS, scores)))
    assert abs(result["average"] - published) < 0.01
    expected_failed = ["pathx"] if scores[-1] == "fail" else []
    assert result["failed"] == expected_failed
    assert result["scale"] == "percent"


def test_lra_average_conventions_for_failed_pathx(offline: None, tmp_path: Path) -> None:
    lra_average = metric_module(load_metric(tmp_path)).lra_average
    five = {"listops": 36.37, "text": 64.27, "retrieval": 57.46, "image": 42.44, "pathfinder": 71.40}
    # missing, None and a score at chance all count as FAIL
    for pathx in ({}, {"pathx": None}, {"pathx": 50.0}, {"pathx": "FAIL"}):
        result = lra_average({**five, **pathx})
        assert result["failed"] == ["pathx"] and result["per_task"]["pathx"] == "FAIL"
        assert result["average"] == pytest.approx(sum(five.values()) / 5)
        # the convention where FAIL counts as chance (50%): the S4 paper lists 53.66
        assert round(result["average_fail_as_chance"], 2) == 53.66
    # fractions in, fractions out
    as_fractions = lra_average({**{k: v / 100 for k, v in five.items()}, "pathx": 0.61})
    assert as_fractions["scale"] == "fraction" and as_fractions["failed"] == []
    assert as_fractions["average"] == pytest.approx((sum(five.values()) / 100 + 0.61) / 6)


def test_lra_average_requires_the_five_other_tasks(offline: None, tmp_path: Path) -> None:
    lra_average = load_metric(tmp_path).lra_average
    with pytest.raises(ValueError, match="'image'"):
        lra_average({"listops": 40.0, "text": 60.0, "retrieval": 60.0, "pathfinder": 70.0, "pathx": "fail"})
    with pytest.raises(ValueError, match="'text'"):
        lra_average({"listops": 40.0, "text": None, "retrieval": 60.0, "image": 40.0, "pathfinder": 70.0})


def test_mnist_tasks_have_an_accuracy_but_no_place_in_the_lra_average(offline: None, tmp_path: Path) -> None:
    assert load_metric(tmp_path, "pmnist").compute(predictions=[3, 1], references=[3, 2]) == {
        "accuracy": 0.5,
        "pmnist_accuracy": 0.5,
    }
    five = {"listops": 36.37, "text": 64.27, "retrieval": 57.46, "image": 42.44, "pathfinder": 71.40}
    with pytest.raises(ValueError, match="'sMNIST' is not part of the LRA average"):
        load_metric(tmp_path).lra_average({**five, "sMNIST": 98.9})


def test_the_standalone_metric_agrees_with_the_task_registry(offline: None, tmp_path: Path) -> None:
    """lra_accuracy.py ships alone (evaluate copies it into its cache) and keeps its own copy of the registry's
    facts."""
    module = metric_module(load_metric(tmp_path))
    assert module.TASKS == tasks.TASKS
    assert module.LRA_TASKS == tasks.LRA_TASKS
    assert module.CHANCE_LEVEL == pytest.approx({name: spec.chance_level for name, spec in tasks.TASK_SPECS.items()})
    for name in ("Path-X", "path_x", "ListOps", "s-MNIST", "PMNIST"):
        assert module.normalize_task(name) == tasks.normalize_task(name)
    for bad in ("imagenet", "path-y"):
        with pytest.raises(ValueError) as theirs:
            module.normalize_task(bad)
        with pytest.raises(ValueError) as ours:
            tasks.normalize_task(bad)
        assert str(theirs.value) == str(ours.value)
    # The rows its docstring quotes as evidence are the registry's.
    for model, short in (
        ("Transformer (LRA paper)", "Transformer (LRA paper)"),
        ("LaS (paper)", "LaS"),
        ("S4 (state-spaces repo)", "S4"),
    ):
        scores, average = PUBLISHED_ROWS[model]
        cells = ", ".join("FAIL" if score == "fail" else f"{score:.2f}" for score in scores)
        assert f"* {short}: {cells} -> Avg {average:.2f}" in module.lra_average.__doc__
