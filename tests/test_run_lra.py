"""End-to-end tests of examples/run_lra.py: train, resume, evaluate, card, push, and argument errors.

Every run is tiny (one layer of width 16, two to four steps on the fixtures of tests/utils.py) and runs in this
process through `run_lra.main(argv)`, so torch and transformers are imported once; only the tests that are about the
process boundary (exit codes, remote code in a clean interpreter) start subprocesses.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification, TrainerCallback, pipeline

from tests.support.hub_server import hub_env
from tests.utils import (
    EXAMPLES,
    REPO_ROOT,
    SUBPROCESS_ENV,
    TINY_MODEL,
    file_hashes,
    import_example,
    make_all_releases,
    tiny_run_args,
    training_logs,
)

run_lra = import_example("run_lra")
run_state = import_example("lra_run_state")
import lra  # noqa: E402  (after run_lra, which puts the repository on sys.path when needed)

LISTOPS_EXPRESSION = "( ( ( [MAX 2 ) 9 ) ] )"


@pytest.fixture(scope="module")
def lra_data(tmp_path_factory) -> dict[str, Path]:
    return make_all_releases(tmp_path_factory.mktemp("lra-data"))


@pytest.fixture(scope="module")
def datasets_cache(tmp_path_factory) -> Path:
    """One `datasets` cache for the whole module: each fixture task is prepared once."""
    return tmp_path_factory.mktemp("datasets-cache")


@pytest.fixture(scope="module")
def trained(lra_data, datasets_cache, tmp_path_factory):
    """`trained(task)` -> (output_dir, metrics) of a tiny run on the task's fixture, run once per module."""
    runs: dict[str, tuple[Path, dict]] = {}

    def train(task: str) -> tuple[Path, dict]:
        if task not in runs:
            output_dir = tmp_path_factory.mktemp(f"run-{task}")
            metrics = run_lra.main(tiny_run_args(task, lra_data[task], output_dir, datasets_cache))
            runs[task] = output_dir, metrics
        return runs[task]

    return train


def example_inputs(output_dir: Path, task: str, lra_data, datasets_cache) -> dict[str, torch.Tensor]:
    """A collated batch of (up to) two test examples, as the model saw them in training."""
    import lra

    encoded = lra.encode(task, lra.load_lra(task, lra_data[task], cache_dir=datasets_cache)["test"], max_length=128)
    batch = lra.LRADataCollator()([encoded[i] for i in range(min(2, len(encoded)))])
    batch.pop("labels")
    return batch


# ---------------------------------------------------------------------------------------------------------------------
# 1. A few steps on every task; the result loads with the Auto classes (and, for ListOps, in a pipeline)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["listops", "text", "retrieval", "image", "pathfinder", "pathx", "pmnist"])
def test_trains_every_task_and_checkpoint_loads(task, trained, lra_data, datasets_cache):
    output_dir, metrics = trained(task)
    assert metrics["train_loss"] > 0 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert (output_dir / "checkpoint-2").is_dir()
    for expected in (
        "config.json",
        "model.safetensors",
        "modeling_las.py",
        "configuration_las.py",
        "README.md",
        "all_results.json",
        "trainer_state.json",
        "learning_curves.png",
    ):
        assert (output_dir / expected).is_file(), expected
    assert (output_dir / "tokenizer.json").is_file() == (task in ("listops", "text", "retrieval"))
    # Pixel tasks ship their image processor (and its code) instead: AutoImageProcessor and the pipeline load it.
    assert (output_dir / "preprocessor_config.json").is_file() == (
        task in ("image", "pathfinder", "pathx", "smnist", "pmnist")
    )
    assert (output_dir / "image_processing_las.py").is_file()  # modeling_las imports it (it registers it)

    inputs = example_inputs(output_dir, task, lra_data, datasets_cache)
    final = AutoModelForSequenceClassification.from_pretrained(output_dir).eval()
    checkpoint = AutoModelForSequenceClassification.from_pretrained(output_dir / "checkpoint-2").eval()
    assert type(final).__name__ == "LaSForSequenceClassification"
    with torch.no_grad():
        logits = final(**inputs).logits
        # max_steps=2 and a checkpoint every 2 steps: the last checkpoint is the final model.
        torch.testing.assert_close(checkpoint(**inputs).logits, logits)
    assert logits.shape == (len(next(iter(inputs.values()))), final.config.num_labels)


@pytest.mark.parametrize("task", ["listops", "retrieval", "image"])
def test_model_card_usage_example_runs(task, trained, tmp_path, monkeypatch):
    """The card's Python example, pointed at the local folder, runs and predicts one class per example."""
    from PIL import Image

    output_dir, _ = trained(task)
    card = (output_dir / "README.md").read_text()
    assert f"Data: the LRA {task} files of a local copy of the official data; train / validation / test:" in card
    example = card.split("```python\n", 1)[1].split("```", 1)[0]
    model_id_line = next(line for line in example.splitlines() if line.startswith("model_id = "))
    example = example.replace(model_id_line, f"model_id = {str(output_dir)!r}")
    side = 128 if task == "pathx" else 32
    Image.fromarray(np.arange(side * side, dtype=np.uint8).reshape(side, side)).save(tmp_path / "example.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "model-card-example", "exec"), namespace)
    assert namespace["predicted_class"].shape == (1,)


def test_listops_checkpoint_classifies_a_raw_expression_in_a_pipeline(trained):
    output_dir, _ = trained("listops")
    classifier = pipeline("text-classification", model=str(output_dir), tokenizer=str(output_dir), device="cpu")
    (prediction,) = classifier([LISTOPS_EXPRESSION])
    assert prediction["label"] in {str(digit) for digit in range(10)}
    assert 0.0 <= prediction["score"] <= 1.0


# ---------------------------------------------------------------------------------------------------------------------
# 3. Interrupted after a checkpoint, resumed: same steps, learning rates and weights as an uninterrupted run
# ---------------------------------------------------------------------------------------------------------------------


class Crash(Exception):
    """Stands for a killed process."""


class CrashAfterSave(TrainerCallback):
    """Raises right after the checkpoint of `step` is written, as if the process had been killed there."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"killed after the checkpoint of step {state.global_step}")


class RecordSteps(TrainerCallback):
    """Records the global step at the start of training and after every optimizer step."""

    def __init__(self):
        self.start_step: int | None = None
        self.steps: list[int] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def four_step_listops_args(lra_data: dict, datasets_cache: Path, output_dir: Path, *extra: str) -> list[str]:
    """A 4-step ListOps run with checkpoints at steps 2 and 4, no evaluation and no prediction: the resume tests'."""
    return tiny_run_args(
        "listops",
        lra_data["listops"],
        output_dir,
        datasets_cache,
        "--max_steps",
        "4",
        "--do_eval",
        "False",
        "--do_predict",
        "False",
        *extra,
    )


def test_resume_after_crash_matches_an_uninterrupted_run(lra_data, datasets_cache, tmp_path):
    args = functools.partial(four_step_listops_args, lra_data, datasets_cache)

    run_lra.main(args(tmp_path / "uninterrupted"))

    interrupted = tmp_path / "interrupted"
    with pytest.raises(Crash):
        run_lra.main(args(interrupted), callbacks=[CrashAfterSave(step=2)])
    assert sorted(p.name for p in interrupted.glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (interrupted / "model.safetensors").exists()  # the run really stopped before its end

    recorder = RecordSteps()
    run_lra.main(args(interrupted, "--resume_from_checkpoint", "True"), callbacks=[recorder])
    assert recorder.start_step == 2 and recorder.steps == [3, 4]  # continued, not restarted

    expected, resumed = training_logs(tmp_path / "uninterrupted"), training_logs(interrupted)
    assert [e["step"] for e in resumed] == [e["step"] for e in expected] == [1, 2, 3, 4]
    # The scheduler state came back: exactly the same learning rate at every step.
    assert [e["learning_rate"] for e in resumed] == [e["learning_rate"] for e in expected]
    assert [e["loss"] for e in resumed] == pytest.approx([e["loss"] for e in expected], rel=1e-4)
    # The optimizer state (Adam moments) came back too: restarting them would move the weights elsewhere.
    reference = AutoModelForSequenceClassification.from_pretrained(tmp_path / "uninterrupted").state_dict()
    for name, tensor in AutoModelForSequenceClassification.from_pretrained(interrupted).state_dict().items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-4, atol=1e-5, msg=name)


def test_resume_true_without_a_checkpoint_is_a_usage_error(lra_data, datasets_cache, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_lra.main(
            tiny_run_args(
                "listops", lra_data["listops"], tmp_path / "empty", datasets_cache, "--resume_from_checkpoint", "True"
            )
        )
    assert exit_info.value.code == 2
    assert "no checkpoint" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# 4. push_to_hub: the repo gets weights, code, tokenizer and card; a clean interpreter loads it as remote code
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow  # subprocesses
def test_push_to_hub_and_load_back_as_remote_code(loopback_hub, lra_data, datasets_cache, tmp_path, monkeypatch):
    repo_id = f"{loopback_hub.user}/las-listops-tiny"
    output_dir = tmp_path / "pushed"
    run_lra.main(
        tiny_run_args(
            "listops", lra_data["listops"], output_dir, datasets_cache, "--push_to_hub", "--hub_model_id", repo_id
        )
    )

    files = loopback_hub.files(repo_id)
    for expected in (
        "config.json",
        "model.safetensors",
        "modeling_las.py",
        "configuration_las.py",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
    ):
        assert expected in files, f"{expected} missing from the pushed repo: {sorted(files)}"
    assert files["modeling_las.py"] == (REPO_ROOT / "modeling_las.py").read_bytes()
    assert files["README.md"] == (output_dir / "README.md").read_bytes()  # our card, not Trainer's draft
    assert not any(name.startswith("checkpoint-") for name in files)

    # A fresh client cache and a fresh interpreter that cannot import this repository: the model must come from the
    # server, code included.
    hub_env(monkeypatch, loopback_hub, tmp_path / "fresh-client")
    inputs = {
        "input_ids": torch.tensor([[5, 13, 7, 9, 17, 2], [3, 14, 4, 17, 2, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]),
    }
    torch.save(inputs, tmp_path / "inputs.pt")
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForSequenceClassification\n"
        "model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()\n"
        "assert type(model).__module__.startswith('transformers_modules'), type(model).__module__\n"
        "with torch.no_grad():\n"
        "    torch.save(model(**torch.load(sys.argv[2])).logits, sys.argv[3])\n"
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    loaded = subprocess.run(
        [sys.executable, "-c", script, repo_id, str(tmp_path / "inputs.pt"), str(tmp_path / "logits.pt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-4000:]

    local = AutoModelForSequenceClassification.from_pretrained(output_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), local(**inputs).logits, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------------------------
# 5. The model card carries the measured test accuracy in its model-index
# ---------------------------------------------------------------------------------------------------------------------


def test_model_card_reports_the_measured_test_accuracy(trained):
    output_dir, _ = trained("listops")
    card = ModelCard.load(output_dir / "README.md")
    test_accuracy = json.loads((output_dir / "test_results.json").read_text())["test_accuracy"]
    test_results = [result for result in card.data.eval_results if result.dataset_split == "test"]
    assert len(test_results) == 1
    assert test_results[0].metric_type == "accuracy"
    assert test_results[0].metric_value == test_accuracy
    assert test_results[0].dataset_config == "listops"
    assert f"{test_accuracy * 100:.2f}%" in card.text
    assert "examples/run_lra.py --task listops" in card.text  # the command that produced it


# ---------------------------------------------------------------------------------------------------------------------
# 6. Bad arguments: one line on stderr, exit code 2, no traceback
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow  # subprocesses
def test_bad_arguments_exit_with_one_line(lra_data, tmp_path):
    cases = {
        "unknown task": (["--task", "sudoku"], "unknown task 'sudoku'"),
        "retrieval without data": (["--task", "retrieval"], "--data_dir is required"),
        "unknown attention": (["--task", "listops", "--attention_type", "linear"], "unknown attention type 'linear'"),
    }
    # The interpreters start in parallel: most of their time is importing torch and transformers.
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / "run_lra.py"), *argv, "--output_dir", str(tmp_path)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=SUBPROCESS_ENV,
        )
        for name, (argv, _) in cases.items()
    }
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, (name, stderr)
        assert "Traceback" not in stderr, (name, stderr)
        assert len(stderr.strip().splitlines()) == 1, (name, stderr)
        assert cases[name][1] in stderr, (name, stderr)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "listops", "--no_such_flag", "1"], "no_such_flag"),
        (["--task", "listops", "--config_overrides", "no_such_field=3"], "no_such_field"),
        (["--task", "listops", "--config_overrides", "las_pool_size=4"], "must be odd"),
        (["--task", "listops", "--attn_implementation", "flash_attention_2"], "--attn_implementation"),
        (["--task", "listops", "--learning_rate", "-1"], "--learning_rate must be a finite number >= 0, not -1"),
        (["--task", "listops", "--learning_rate", "nan"], "--learning_rate must be a finite number"),
        (
            ["--task", "listops", "--per_device_train_batch_size", "0"],
            "--per_device_train_batch_size must be an int >= 1",
        ),
        (
            ["--task", "listops", "--per_device_eval_batch_size", "0"],
            "--per_device_eval_batch_size must be an int >= 1",
        ),
        (["--task", "listops", "--max_length", "0"], "--max_length must be an int >= 1, got 0"),
        (["--task", "listops", "--max_train_samples", "0"], "--max_train_samples must be an int >= 1, got 0"),
        (["--task", "listops", "--max_eval_samples", "-2"], "--max_eval_samples must be an int >= 1"),
        (["--task", "listops", "--model_name_or_path", "/no/such/model"], "--model_name_or_path /no/such/model"),
        (["--task", "listops", "--generate_num_val", "0"], "--generate_num_val must be an int >= 1, got 0"),
        (["--task", "listops", "--generate_min_length", "40"], "--generate_min_length (40) must be smaller than"),
        (["--task", "pathfinder", "--generate_num_images", "5"], "--generate_num_images must be >= 10, got 5"),
        (["--task", "pathfinder", "--pathfinder_resolution", "48"], "Invalid --pathfinder_resolution=48"),
        (["--task", "smnist"], "apt-get install dataset-fashion-mnist"),
        (["--task", "pmnist", "--data_dir", ".", "--mnist_labels", "letters"], "--mnist_labels must be one of"),
        # Numbers torch or Trainer would refuse only after the data work, or take and turn into NaN weights:
        (["--task", "listops", "--seed", "-1"], "--seed must be a finite number >= 0 and <= 4.29497e+09, not -1"),
        (["--task", "listops", "--data_seed", "-5"], "--data_seed must be a finite number >= 0"),
        (["--task", "listops", "--adam_beta1", "1.5"], "--adam_beta1 must be a finite number >= 0 and < 1, not 1.5"),
        (["--task", "listops", "--adam_beta2", "-0.1"], "--adam_beta2 must be a finite number >= 0 and < 1"),
        (["--task", "listops", "--adam_epsilon", "-1"], "--adam_epsilon must be a finite number > 0, not -1"),
        (["--task", "listops", "--adam_epsilon", "0"], "--adam_epsilon must be a finite number > 0, not 0"),
        (["--task", "listops", "--weight_decay", "nan"], "--weight_decay must be a finite number, not nan"),
        (["--task", "listops", "--weight_decay", "-0.1"], "--weight_decay must be a finite number >= 0"),
        (["--task", "listops", "--max_grad_norm", "-1"], "--max_grad_norm must be a finite number >= 0"),
        (["--task", "listops", "--max_grad_norm", "inf"], "--max_grad_norm must be a finite number, not inf"),
        (["--task", "listops", "--num_train_epochs", "inf"], "--num_train_epochs must be a finite number, not inf"),
        (["--task", "listops", "--warmup_steps", "nan"], "--warmup_steps must be a finite number, not nan"),
        (["--task", "listops", "--label_smoothing_factor", "1"], "--label_smoothing_factor must be a finite number"),
        (["--task", "listops", "--save_total_limit", "0"], "--save_total_limit must be an int >= 1"),
        (["--task", "listops", "--eval_accumulation_steps", "0"], "--eval_accumulation_steps must be an int >= 1"),
        (["--task", "listops", "--dataloader_num_workers", "-1"], "--dataloader_num_workers must be a finite number"),
        (["--task", "listops", "--save_steps", "-5"], "--save_steps must be a finite number > 0"),
        (["--task", "pathfinder", "--max_length", "64"], "--max_length applies to token tasks"),
        # What the run would do:
        (["--task", "listops", "--do_train", "False"], "--do_train False evaluates an existing model"),
        (
            ["--task", "listops", "--do_train", "False", "--resume_from_checkpoint", "True"],
            "--resume_from_checkpoint continues a training run, but --do_train is False",
        ),
        (
            ["--task", "listops", "--do_train", "False", "--do_eval", "False", "--do_predict", "False"]
            + ["--eval_strategy", "no", "--load_best_model_at_end", "False"],  # else Trainer turns do_eval on
            "nothing to do",
        ),
    ],
)
def test_more_bad_arguments_in_process(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_lra.main(
            [
                *argv,
                "--output_dir",
                str(tmp_path / "out"),
                "--generated_data_root",
                str(tmp_path / "gen"),
                "--generate_num_train",
                "2",
                "--generate_num_val",
                "1",
                "--generate_num_test",
                "1",
                "--generate_min_length",
                "3",
                "--generate_max_length",
                "30",
                *argv[2:],
            ]
        )
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
    assert not (tmp_path / "gen").exists() and not (tmp_path / "out").exists()  # refused before any work


# ---------------------------------------------------------------------------------------------------------------------
# Generated data are made once and reused
# ---------------------------------------------------------------------------------------------------------------------


def tiny_generated_listops_argv(tmp_path) -> list[str]:
    """run_lra flags that generate a ListOps of 6 / 2 / 2 expressions under tmp_path."""
    return [
        "--task",
        "listops",
        "--output_dir",
        str(tmp_path / "out"),
        "--generated_data_root",
        str(tmp_path / "gen"),
        "--cache_dir",
        str(tmp_path / "cache"),
        "--use_cpu",
        "--generate_num_train",
        "6",
        "--generate_num_val",
        "2",
        "--generate_num_test",
        "2",
        "--generate_min_length",
        "5",
        "--generate_max_length",
        "60",
    ]


def test_generated_listops_is_reused(tmp_path):
    model_args, data_args, training_args, _ = run_lra.parse_arguments(tiny_generated_listops_argv(tmp_path))
    folder = run_state.generated_data_dir(data_args)
    assert folder.parent == tmp_path / "gen" and "train6" in folder.name
    tokenizer = lra.get_tokenizer("listops")
    run_lra.load_datasets(data_args, training_args, tokenizer)
    train_file = folder / "listops-1000" / "basic_train.tsv"
    assert len(train_file.read_text().splitlines()) == 1 + 6
    assert (folder / run_state.GENERATED_MARKER).is_file()  # generated and loaded
    stamp = train_file.stat().st_mtime_ns
    run_lra.load_datasets(data_args, training_args, tokenizer)  # second run: nothing regenerated
    assert train_file.stat().st_mtime_ns == stamp
    assert (
        run_state.generated_data_dir(
            run_lra.parse_arguments(
                [
                    "--task",
                    "listops",
                    "--output_dir",
                    str(tmp_path / "o"),
                    "--generated_data_root",
                    str(tmp_path / "gen"),
                    "--generate_seed",
                    "1",
                ]
            )[1]
        )
        != folder
    )  # other parameters, other folder

    # The model card says what the data were, and that a small generated set is not the LRA task.
    sizes = {"train": range(6), "validation": range(2), "test": range(2)}
    description = run_state.describe_data(data_args, sizes)
    assert description.startswith(
        "ListOps generated by the las-transformers generator (seed 0), expressions of 5 to 60"
    )
    assert "train / validation / test: 6 / 2 / 2 examples." in description
    assert "published accuracies are not comparable" in description
    lra_sized = run_lra.parse_arguments(["--task", "listops", "--output_dir", str(tmp_path / "o")])[1]
    full_sizes = {"train": range(96_000), "validation": range(2_000), "test": range(2_000)}
    assert "not comparable" not in run_state.describe_data(lra_sized, full_sizes)


def test_config_precedence(tmp_path):
    """configs/<task>.json < --config FILE < command-line flags; --config_overrides wins for LaSConfig fields."""
    user_config = tmp_path / "mine.json"
    user_config.write_text(
        json.dumps(
            {
                "model": {"hidden_size": 32, "las_pool_size": 7},
                "training": {"learning_rate": 0.002, "weight_decay": 0.0},
            }
        )
    )
    _, _, training_args, model_fields = run_lra.parse_arguments(
        [
            "--task",
            "listops",
            "--output_dir",
            str(tmp_path / "o"),
            "--config",
            str(user_config),
            "--learning_rate",
            "0.003",
        ]
    )
    defaults = json.loads((EXAMPLES / "configs" / "listops.json").read_text())
    assert model_fields["hidden_size"] == 32 and model_fields["las_pool_size"] == 7
    assert model_fields["num_hidden_layers"] == defaults["model"]["num_hidden_layers"]
    assert training_args.learning_rate == 0.003  # the flag
    assert training_args.weight_decay == 0.0  # the --config file
    assert training_args.per_device_train_batch_size == defaults["training"]["per_device_train_batch_size"]
    from lra_training import parse_config_overrides

    assert parse_config_overrides("las_pool_size=5, norm_type=batchnorm,las_alphas=[0,0.1],is_causal=False") == {
        "las_pool_size": 5,
        "norm_type": "batchnorm",
        "las_alphas": [0, 0.1],
        "is_causal": False,
    }


# ---------------------------------------------------------------------------------------------------------------------
# 7. Faults: a killed checkpoint save, a resume that does not match its checkpoint, generated data that fail to load
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_killed_checkpoint_save_resumes_from_the_last_complete_one(lra_data, datasets_cache, tmp_path, caplog):
    args = functools.partial(four_step_listops_args, lra_data, datasets_cache)

    killed = tmp_path / "killed"
    # SIGKILL halfway through the second checkpoint's save: weights written, no optimizer, no trainer_state.json.
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_lra.py"), *args(killed)],
        cwd=REPO_ROOT,
        env={**SUBPROCESS_ENV, "LAS_KILL_AT": "checkpoint-save@2"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == -9, process.stderr[-2000:]
    assert (killed / "checkpoint-4" / "model.safetensors").is_file()
    assert not (killed / "checkpoint-4" / "trainer_state.json").exists()
    complete = file_hashes(killed / "checkpoint-2")

    # Naming the partial checkpoint is refused in one line; a new run into the folder too.
    with pytest.raises(SystemExit) as exit_info:
        run_lra.main(args(killed, "--resume_from_checkpoint", str(killed / "checkpoint-4")))
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        run_lra.main(args(killed))
    assert exit_info.value.code == 2

    recorder = RecordSteps()
    with caplog.at_level("WARNING", logger="lra_run_state"):
        run_lra.main(args(killed, "--resume_from_checkpoint", "True"), callbacks=[recorder])
    assert f"Skipping {killed / 'checkpoint-4'}: its save was interrupted" in caplog.text
    assert recorder.start_step == 2 and recorder.steps == [3, 4]
    assert file_hashes(killed / "checkpoint-2") == complete  # nothing earlier was lost or touched
    assert run_state.checkpoint_is_complete(killed / "checkpoint-4")

    run_lra.main(args(tmp_path / "uninterrupted"))
    expected, resumed = training_logs(tmp_path / "uninterrupted"), training_logs(killed)
    assert [e["learning_rate"] for e in resumed] == [e["learning_rate"] for e in expected]
    assert [e["loss"] for e in resumed] == pytest.approx([e["loss"] for e in expected], rel=1e-4)


def test_resume_of_another_run_is_refused_and_changes_nothing(trained, lra_data, datasets_cache, tmp_path, capsys):
    finished, _ = trained("listops")
    output_dir = tmp_path / "finished"
    shutil.copytree(finished, output_dir)
    before = file_hashes(output_dir)
    capsys.readouterr()  # the fixture's training output
    assert json.loads((output_dir / "checkpoint-2" / run_state.RUN_RECORD).read_text())["attention_type"] == "las"

    def attempt(*extra: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            run_lra.main(tiny_run_args("listops", lra_data["listops"], output_dir, datasets_cache, *extra))
        assert exit_info.value.code == 2
        stderr = capsys.readouterr().err
        assert len(stderr.strip().splitlines()) == 1, stderr
        return stderr

    stderr = attempt("--attention_type", "softmax", "--resume_from_checkpoint", "True")
    assert "belongs to another run (attention_type: 'las' there, 'softmax' here;" in stderr
    assert "model.attention_type" in stderr
    assert "model.las_pool_size" in attempt(
        "--config_overrides", TINY_MODEL + ",las_pool_size=5", "--resume_from_checkpoint", "True"
    )
    assert "data.max_train_samples: None there, 4 here" in attempt(
        "--max_train_samples", "4", "--resume_from_checkpoint", "True"
    )
    assert "holds checkpoints of an earlier run (checkpoint-2)" in attempt("--attention_type", "softmax")
    assert file_hashes(output_dir) == before  # nothing was written

    # --overwrite_output_dir starts over: the earlier checkpoints go, the new run's record says softmax.
    run_lra.main(
        tiny_run_args(
            "listops",
            lra_data["listops"],
            output_dir,
            datasets_cache,
            "--attention_type",
            "softmax",
            "--overwrite_output_dir",
            "True",
            "--max_steps",
            "1",
            "--save_steps",
            "1",
        )
    )
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-1"]
    for record in (output_dir / run_state.RUN_RECORD, output_dir / "checkpoint-1" / run_state.RUN_RECORD):
        assert json.loads(record.read_text())["attention_type"] == "softmax"


def test_generated_data_are_marked_complete_only_once_they_load(tmp_path, monkeypatch):
    import lra.listops

    _, data_args, training_args, _ = run_lra.parse_arguments(tiny_generated_listops_argv(tmp_path))
    folder = run_state.generated_data_dir(data_args)
    validation = folder / "listops-1000" / "basic_val.tsv"
    real_generator = lra.listops.generate_listops

    def faulty_generator(*args, **kwargs):  # the fault: a generation that leaves an unusable split behind
        paths = real_generator(*args, **kwargs)
        validation.write_text("Source\tTarget\n")
        return paths

    monkeypatch.setattr(lra.listops, "generate_listops", faulty_generator)
    with pytest.raises(lra.LRAFormatError, match=rf"{validation}: only the header, no example"):
        run_lra.load_datasets(data_args, training_args, lra.get_tokenizer("listops"))
    assert not (folder / run_state.GENERATED_MARKER).exists()
    monkeypatch.undo()
    data = run_lra.load_datasets(data_args, training_args, lra.get_tokenizer("listops"))  # generated again
    assert {split: len(part) for split, part in data.items()} == {"train": 6, "validation": 2, "test": 2}
    assert (folder / run_state.GENERATED_MARKER).is_file()


# ---------------------------------------------------------------------------------------------------------------------
# 8. Non-finite numbers, a locked output_dir, evaluation-only runs, incomplete checkpoints, cards off the benchmark
# ---------------------------------------------------------------------------------------------------------------------


class PoisonWeights(TrainerCallback):
    """The fault: the optimizer step of `step` leaves a NaN in the first weight, as a diverging update does."""

    def __init__(self, step: int):
        self.step = step

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.step:  # Trainer counts the step after this event
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")


def assert_no_card_and_finite_saves(output_dir: Path) -> None:
    """What a diverged run may leave: checkpoints of its finite steps, never a card or a final model."""
    from safetensors.torch import load_file

    assert not (output_dir / "README.md").exists() and not (output_dir / "model.safetensors").exists()
    for checkpoint in output_dir.glob("checkpoint-*"):
        for name, tensor in load_file(checkpoint / "model.safetensors").items():
            assert torch.isfinite(tensor).all(), f"{checkpoint.name}: {name}"


@pytest.mark.parametrize(
    "fault",
    ["nan weights at step 3", "initializer_range=1e30", "las_alpha_max=1e39", "--learning_rate 1e30"],
)
def test_a_run_that_turns_non_finite_stops_with_an_error_and_no_card(
    fault, lra_data, datasets_cache, tmp_path, capsys
):
    extra, callbacks = [], []
    if fault.startswith("nan weights"):
        callbacks = [PoisonWeights(step=3)]
    elif fault.startswith("--"):
        extra = fault.split()
    else:
        extra = ["--config_overrides", f"{TINY_MODEL},{fault}"]
    output_dir = tmp_path / "run"
    argv = tiny_run_args("listops", lra_data["listops"], output_dir, datasets_cache, "--max_steps", "4", *extra)
    with pytest.raises(SystemExit) as exit_info:
        run_lra.main(argv, callbacks=callbacks)
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    if exit_info.value.code == 2:  # refused up front (a config check of the model): as good, if it names the field
        assert fault.split("=")[0] in last_line, last_line
    else:
        assert exit_info.value.code == 1 and "run_lra.py: error: training became non-finite at step" in last_line
    assert_no_card_and_finite_saves(output_dir)
    if fault.startswith("nan weights"):
        assert "step 3: the weights of" in last_line
        assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2"]


def test_a_second_run_into_a_busy_output_dir_is_refused(lra_data, datasets_cache, tmp_path, capsys):
    """Two runs writing one folder would leave one's config and card beside the other's weights."""
    lra_training = import_example("lra_training")
    output_dir = tmp_path / "run"
    with lra_training.lock_folder(output_dir, "--output_dir"):  # the first run, still going
        with pytest.raises(SystemExit) as exit_info:
            run_lra.main(tiny_run_args("listops", lra_data["listops"], output_dir, datasets_cache))
        assert exit_info.value.code == 2
        stderr = capsys.readouterr().err
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert f"--output_dir {output_dir} is in use by another run (pid {os.getpid()} on" in stderr
        assert sorted(path.name for path in output_dir.iterdir()) == [lra_training.LOCK_FILE]  # nothing written


def test_an_output_dir_that_is_a_file_is_refused_before_any_work(lra_data, datasets_cache, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        run_lra.main(tiny_run_args("listops", lra_data["listops"], tmp_path / "file", datasets_cache))
    assert exit_info.value.code == 2
    assert f"--output_dir {tmp_path / 'file'} is a file, not a folder" in capsys.readouterr().err


def test_a_checkpoint_without_its_optimizer_is_not_resumed(trained, lra_data, datasets_cache, tmp_path, capsys):
    finished, _ = trained("listops")
    output_dir = tmp_path / "run"
    shutil.copytree(finished, output_dir)
    (output_dir / "checkpoint-2" / "optimizer.pt").unlink()  # resuming would restart the Adam moments silently
    capsys.readouterr()

    def attempt(value: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            run_lra.main(
                tiny_run_args(
                    "listops", lra_data["listops"], output_dir, datasets_cache, "--resume_from_checkpoint", value
                )
            )
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    assert "no checkpoint to resume" in attempt("True")
    assert "incomplete checkpoint (missing: optimizer.pt)" in attempt(str(output_dir / "checkpoint-2"))


def evaluation_only_args(model: Path, output_dir: Path, lra_data, datasets_cache) -> list[str]:
    """A tiny run that evaluates `model` on the ListOps fixture without training it."""
    return tiny_run_args(
        "listops",
        lra_data["listops"],
        output_dir,
        datasets_cache,
        "--do_train",
        "False",
        "--model_name_or_path",
        str(model),
    )


def test_an_evaluation_only_run_says_it_trained_nothing(trained, lra_data, datasets_cache, tmp_path):
    finished, _ = trained("listops")
    output_dir = tmp_path / "evaluated"
    metrics = run_lra.main(evaluation_only_args(finished, output_dir, lra_data, datasets_cache))
    assert "train_loss" not in metrics and 0 <= metrics["test_accuracy"] <= 1
    card = (output_dir / "README.md").read_text()
    assert f"it evaluated `{finished}` as given" in card
    assert "Training arguments:" not in card and "| learning_rate |" not in card
    # The weights it evaluated are the ones it leaves.
    evaluated = AutoModelForSequenceClassification.from_pretrained(output_dir).state_dict()
    for name, tensor in AutoModelForSequenceClassification.from_pretrained(finished).state_dict().items():
        torch.testing.assert_close(evaluated[name], tensor, rtol=0, atol=0)


def test_evaluating_a_model_with_nan_weights_fails_and_writes_no_card(trained, lra_data, datasets_cache, tmp_path):
    finished, _ = trained("listops")
    broken = tmp_path / "broken"
    model = AutoModelForSequenceClassification.from_pretrained(finished)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    model.save_pretrained(broken)
    output_dir = tmp_path / "evaluated"
    with pytest.raises(SystemExit) as exit_info:
        run_lra.main(evaluation_only_args(broken, output_dir, lra_data, datasets_cache))
    assert exit_info.value.code == 1
    assert_no_card_and_finite_saves(output_dir)


def test_a_card_off_the_benchmark_says_so_and_quotes_no_paper_number(trained):
    """The fixture is a few rows of the ListOps files, cut to 128 tokens: nothing like the LRA task."""
    output_dir, _ = trained("listops")
    card = (output_dir / "README.md").read_text()
    assert "train split of 20 examples, not 96,000" in card
    assert "sequences cut to 128 tokens, not 2,048" in card
    assert "so published accuracies are not comparable" in card
    test_row = next(line for line in card.splitlines() if line.startswith("| test |"))
    assert test_row.endswith("| - |"), test_row  # the paper's 53.05% is not set beside it


@pytest.mark.slow  # two training runs in subprocesses, through the shell script
def test_quickstart_prints_the_conclusion_its_numbers_support(tmp_path):
    compare_runs = import_example("compare_runs")
    output_dir = tmp_path / "quickstart"
    sizes = {"NUM_TRAIN": "40", "NUM_VAL": "10", "NUM_TEST": "20", "MIN_LENGTH": "5", "MAX_LENGTH": "30"}
    env = {
        **SUBPROCESS_ENV,
        **sizes,
        "EPOCHS": "1",
        "BATCH_SIZE": "8",
        "EVAL_STEPS": "5",
        "MODEL": TINY_MODEL,
        "OUTPUT_DIR": str(output_dir),
        "PYTHON": sys.executable,
        "LAS_TRANSFORMERS_CACHE": str(tmp_path / "cache"),
    }
    process = subprocess.run(
        ["bash", str(EXAMPLES / "quickstart.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert process.returncode == 0, process.stderr[-3000:]
    rows = [
        compare_runs.summarize(output_dir / name, label) for name, label in (("las", "LaS"), ("softmax", "softmax"))
    ]
    expected = compare_runs.compare_accuracies(*rows)  # from the runs' own files
    assert f"Conclusion: {expected}" in process.stdout
    assert f"Conclusion: {expected}" in (output_dir / "comparison.md").read_text()
    assert rows[0]["test examples"] == 20
