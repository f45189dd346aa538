"""The resolution option of the pixel tasks (`encode(..., pixel_pool_size=k)`, run_lra's `--pixel_pool_size`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import lra
from image_processing_las import LaSImageProcessor, scale_pixels
from lra.tokenization import pixel_pool_processor_settings
from tests.utils import REPO_ROOT, make_mnist_release, mnist_split


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    return make_mnist_release(tmp_path_factory.mktemp("mnist-pool"))


def hand_average(image: np.ndarray) -> np.ndarray:
    """2x2 block means of a 28x28 image, written out: 14x14 floats."""
    pooled = np.zeros((14, 14))
    for row in range(14):
        for col in range(14):
            block = image[2 * row : 2 * row + 2, 2 * col : 2 * col + 2].astype(float)
            pooled[row, col] = (block[0, 0] + block[0, 1] + block[1, 0] + block[1, 1]) / 4
    return pooled


def test_smnist_pooled_is_the_2x2_average(mnist_dir, tmp_path):
    data = lra.load_lra("smnist", mnist_dir, cache_dir=tmp_path / "cache")
    encoded = lra.encode("smnist", data["train"], pixel_pool_size=2)
    images, _ = mnist_split("train")
    for index in range(3):
        row = np.asarray(encoded[index]["pixel_values"]) * 255
        assert row.shape == (196,)
        # uint8 storage: the mean rounded half up.
        np.testing.assert_array_equal(row.round(), np.floor(hand_average(images[index]).reshape(-1) + 0.5))


def test_exact_means_are_kept_exactly():
    image = (np.arange(28 * 28, dtype=np.int64).reshape(28, 28) % 7 * 4).astype(np.uint8)  # every block sum % 4 == 0
    import datasets

    split = datasets.Dataset.from_dict({"pixels": [image.reshape(-1).tolist()], "label": [0]})
    pooled = lra.encode("smnist", split, pixel_pool_size=2)[0]["pixel_values"]
    np.testing.assert_array_equal(np.round(np.asarray(pooled) * 255), hand_average(image).reshape(-1))


def test_pmnist_pools_the_image_then_permutes_the_pooled_pixels(mnist_dir, tmp_path):
    data = lra.load_lra("pmnist", mnist_dir, cache_dir=tmp_path / "cache")
    pooled = lra.encode("pmnist", data["test"], pixel_pool_size=2)
    smnist = lra.encode("smnist", lra.load_lra("smnist", mnist_dir, cache_dir=tmp_path / "cache")["test"])
    smnist_pooled = lra.encode(
        "smnist", lra.load_lra("smnist", mnist_dir, cache_dir=tmp_path / "cache")["test"], pixel_pool_size=2
    )
    permutation = lra.pmnist_permutation(196)
    assert sorted(permutation.tolist()) == list(range(196))
    for index in range(len(smnist)):
        np.testing.assert_array_equal(
            np.asarray(pooled[index]["pixel_values"]), np.asarray(smnist_pooled[index]["pixel_values"])[permutation]
        )


@pytest.mark.parametrize("task", ["smnist", "pmnist"])
def test_saved_image_processor_gives_the_training_pixels(task, mnist_dir, tmp_path):
    """A pooled checkpoint's processor turns the 28x28 image into the row the model trained on."""
    processor = LaSImageProcessor(**pixel_pool_processor_settings(task, 784, 2))
    encoded = lra.encode(task, lra.load_lra(task, mnist_dir, cache_dir=tmp_path / "cache")["test"], pixel_pool_size=2)
    images, _ = mnist_split("t10k")
    for index in range(2):
        from_image = processor(images[index], return_tensors="np")["pixel_values"][0]
        np.testing.assert_array_equal(from_image, np.asarray(encoded[index]["pixel_values"], dtype=np.float32))
    assert scale_pixels([255])[0] == 1.0


def test_bad_pool_sizes_are_refused():
    import datasets

    split = datasets.Dataset.from_dict({"pixels": [[0] * 784], "label": [0]})
    with pytest.raises(ValueError, match="pixel_pool_size=3 needs square images whose side is a multiple"):
        lra.encode("smnist", split, pixel_pool_size=3)
    with pytest.raises(ValueError, match="pixel_pool_size must be an integer >= 1"):
        lra.encode("smnist", split, pixel_pool_size=0)
    with pytest.raises(ValueError, match="pixel tasks only"):
        lra.encode("listops", split, pixel_pool_size=2)


def test_run_lra_pools_stops_early_and_saves_test_predictions(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "examples"))
    import run_lra

    output_dir = tmp_path / "run"
    argv = [
        "--task",
        "smnist",
        "--data_dir",
        str(mnist_dir),
        "--output_dir",
        str(output_dir),
        "--pixel_pool_size",
        "2",
        "--config_overrides",
        "hidden_size=16,num_hidden_layers=1,num_attention_heads=2,intermediate_size=16",
        "--max_steps",
        "40",
        "--per_device_train_batch_size",
        "4",
        "--learning_rate",
        "0",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "2",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--load_best_model_at_end",
        "True",
        "--metric_for_best_model",
        "accuracy",
        "--early_stopping_patience",
        "2",
        "--use_cpu",
        "--report_to",
        "none",
        "--disable_tqdm",
        "True",
        "--seed",
        "0",
    ]
    metrics = run_lra.main(argv)
    state = json.loads((output_dir / "trainer_state.json").read_text())
    # learning rate 0: validation never improves after the first evaluation, so patience 2 stops at step 6.
    assert state["global_step"] == 6
    config = json.loads((output_dir / "config.json").read_text())
    assert config["max_position_embeddings"] >= 196
    with open(output_dir / "test_predictions.csv") as file:
        rows = list(csv.DictReader(file))
    _, labels = mnist_split("t10k")
    assert [int(row["label"]) for row in rows] == labels.tolist()
    accuracy = np.mean([row["label"] == row["prediction"] for row in rows])
    assert accuracy == pytest.approx(metrics["test_accuracy"])
    processor = json.loads((output_dir / "preprocessor_config.json").read_text())
    assert processor["size"] == {"height": 14, "width": 14} and processor["do_resize"]


def test_run_lra_refuses_early_stopping_without_best_model(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "examples"))
    import run_lra

    argv = ["--task", "smnist", "--data_dir", str(mnist_dir), "--output_dir", str(tmp_path / "run")]
    with pytest.raises(run_lra.UsageError, match="--early_stopping_patience needs --load_best_model_at_end"):
        run_lra.parse_arguments([*argv, "--early_stopping_patience", "3", "--load_best_model_at_end", "False"])
    with pytest.raises(run_lra.UsageError, match="pixel_pool_size"):
        run_lra.parse_arguments([*argv, "--pixel_pool_size", "3"])
