"""The library pieces of examples/run_lra.py, tested without training: checkpoints and resuming, the benchmark
comparison of the model card, the output-folder lock, the number checks, and the stop on non-finite numbers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from tests.utils import EXAMPLES, SUBPROCESS_ENV, import_example

run_lra = import_example("run_lra")
run_state = import_example("lra_run_state")
lra_training = import_example("lra_training")
training_checks = import_example("training_checks")
compare_runs = import_example("compare_runs")

#: What Trainer writes into a checkpoint (single process), each with some content.
CHECKPOINT_FILES = (
    "config.json",
    "model.safetensors",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pth",
    "trainer_state.json",
    "training_args.bin",
)


def make_checkpoint(folder: Path, skip: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True)
    for name in CHECKPOINT_FILES:
        if name not in skip:
            (folder / name).write_text(json.dumps({"log_history": []}) if name.endswith(".json") else "x")
    return folder


def data_args(task: str = "listops", **fields):
    """run_lra's DataArguments for the task (its own defaults) with `fields` set."""
    return run_lra.DataArguments(task=task, **fields)


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints: complete means everything an exact resume needs
# ---------------------------------------------------------------------------------------------------------------------


def test_a_checkpoint_with_every_file_is_complete(tmp_path):
    assert run_state.checkpoint_is_complete(make_checkpoint(tmp_path / "checkpoint-2"))
    # A distributed run writes one RNG file per process.
    distributed = make_checkpoint(tmp_path / "checkpoint-4", skip=("rng_state.pth",))
    for rank in (0, 1):
        (distributed / f"rng_state_{rank}.pth").write_text("x")
    assert run_state.checkpoint_is_complete(distributed)


@pytest.mark.parametrize(
    "skip, missing",
    [
        (("optimizer.pt",), ["optimizer.pt"]),  # resuming would restart the Adam moments
        (("scheduler.pt",), ["scheduler.pt"]),  # ... or the learning-rate schedule
        (("optimizer.pt", "scheduler.pt", "rng_state.pth"), ["optimizer.pt", "scheduler.pt", "rng_state*.pth"]),
        (("trainer_state.json",), ["trainer_state.json"]),  # a save killed midway
        (("model.safetensors",), ["model.safetensors"]),
        (("config.json",), ["config.json"]),
    ],
)
def test_a_checkpoint_missing_a_file_is_incomplete_and_says_which(tmp_path, skip, missing):
    checkpoint = make_checkpoint(tmp_path / "checkpoint-2", skip=skip)
    assert run_state.missing_checkpoint_files(checkpoint) == missing
    assert not run_state.checkpoint_is_complete(checkpoint)


def test_an_empty_or_cut_short_file_is_missing(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "checkpoint-2")
    (checkpoint / "optimizer.pt").write_bytes(b"")
    (checkpoint / "trainer_state.json").write_text('{"log_hist')
    assert run_state.missing_checkpoint_files(checkpoint) == ["optimizer.pt", "trainer_state.json"]


def test_resume_skips_incomplete_checkpoints_and_names_what_they_lack(tmp_path, caplog):
    make_checkpoint(tmp_path / "checkpoint-2")
    make_checkpoint(tmp_path / "checkpoint-10", skip=("optimizer.pt",))
    make_checkpoint(tmp_path / "checkpoint-4", skip=("scheduler.pt",))
    assert [path.name for path in run_state.checkpoint_folders(tmp_path)] == [
        "checkpoint-10",
        "checkpoint-4",
        "checkpoint-2",
    ]
    with caplog.at_level("WARNING", logger="lra_run_state"):
        assert run_state.last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert f"Skipping {tmp_path / 'checkpoint-10'}" in caplog.text and "missing: optimizer.pt" in caplog.text
    assert "missing: scheduler.pt" in caplog.text

    def resolve(value):
        training_args = types.SimpleNamespace(resume_from_checkpoint=value, output_dir=str(tmp_path), do_train=True)
        return run_state.resolve_checkpoint(training_args, types.SimpleNamespace(overwrite_output_dir=False))

    assert resolve("True") == str(tmp_path / "checkpoint-2")
    with pytest.raises(lra_training.UsageError, match=r"incomplete checkpoint \(missing: optimizer.pt\)"):
        resolve(str(tmp_path / "checkpoint-10"))
    with pytest.raises(lra_training.UsageError, match="holds checkpoints of an earlier run"):
        resolve(None)
    assert [run_state.resume_requested(v) for v in (None, "", "False", "none", "True", "last", "/a/b")] == [
        False,
        False,
        False,
        False,
        True,
        True,
        True,
    ]


def test_resume_compares_run_records_leaf_by_leaf(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "checkpoint-2")
    saved = {"task": "listops", "attention_type": "las", "model": {"las_pool_size": 3}, "data": {"max_length": 64}}
    (checkpoint / run_state.RUN_RECORD).write_text(json.dumps(saved))
    run_state.check_checkpoint_matches(str(checkpoint), saved, fallback_fields=())
    other = {**saved, "attention_type": "softmax", "model": {"las_pool_size": 5}}
    with pytest.raises(lra_training.UsageError) as error:
        run_state.check_checkpoint_matches(str(checkpoint), other, fallback_fields=())
    assert "attention_type: 'las' there, 'softmax' here; model.las_pool_size: 3 there, 5 here" in str(error.value)


# ---------------------------------------------------------------------------------------------------------------------
# The model card says when the numbers are not the benchmark's
# ---------------------------------------------------------------------------------------------------------------------


def sized(train: int, validation: int, test: int) -> dict[str, range]:
    return {"train": range(train), "validation": range(validation), "test": range(test)}


@pytest.mark.parametrize(
    "task, fields, sizes, reasons",
    [
        ("listops", {}, sized(96_000, 2_000, 2_000), []),
        ("listops", {"max_length": 2048}, sized(96_000, 2_000, 2_000), []),  # the task's own length
        ("listops", {"max_length": 4096}, sized(96_000, 2_000, 2_000), []),  # longer cuts nothing
        ("listops", {"max_length": 128}, sized(96_000, 2_000, 2_000), ["sequences cut to 128 tokens, not 2,048"]),
        # a --data_dir copy holding part of the release (or --max_*_samples): each short split is named
        ("listops", {"data_dir": "/d"}, sized(20, 2_000, 5), ["train split of 20 examples", "test split of 5"]),
        ("text", {"data_dir": "/d"}, sized(25_000, 25_000, 25_000), []),
        ("retrieval", {"data_dir": "/d"}, sized(147_086, 18_090, 17_437), []),
        ("image", {}, sized(45_000, 5_000, 10_000), []),
        ("pathfinder", {"data_dir": "/d"}, sized(159_990, 19_999, 20_000), []),  # a few empty release images
        ("pathfinder", {"pathfinder_resolution": 64}, sized(160_000, 20_000, 20_000), ["64x64 images"]),
        ("listops", {"generate_min_length": 20}, sized(96_000, 2_000, 2_000), ["expressions of 20 to 2000 tokens"]),
        ("pmnist", {"data_dir": "/d"}, sized(54_000, 6_000, 10_000), []),
    ],
)
def test_differences_from_the_benchmark(task, fields, sizes, reasons):
    found = run_state.differences_from_benchmark(data_args(task, **fields), sizes)
    assert len(found) == len(reasons) and all(reason in line for reason, line in zip(reasons, found)), found
    description = run_state.describe_data(data_args(task, **fields), sizes)
    assert ("published accuracies are not comparable" in description) == bool(reasons)


def test_every_task_has_benchmark_sizes():
    import lra

    assert set(run_state.BENCHMARK_SPLIT_SIZES) == set(lra.TASKS)


# ---------------------------------------------------------------------------------------------------------------------
# The output-folder lock
# ---------------------------------------------------------------------------------------------------------------------


def test_a_locked_folder_refuses_a_second_holder_naming_folder_and_pid(tmp_path):
    folder = tmp_path / "run"
    with lra_training.lock_folder(folder, "--output_dir"):
        with pytest.raises(lra_training.FolderInUseError) as error:
            with lra_training.lock_folder(folder, "--output_dir"):
                pass
        (folder / "weights").write_text("written by the holder")
    message = str(error.value)
    assert f"--output_dir {folder} is in use by another run (pid {os.getpid()} on" in message
    assert not (folder / lra_training.LOCK_FILE).exists()  # released: no file left behind
    with lra_training.lock_folder(folder):  # and free again
        pass
    assert (folder / "weights").is_file()


def test_a_refused_run_leaves_no_empty_folder_and_a_written_one_stays(tmp_path):
    with lra_training.lock_folder(tmp_path / "new" / "run"):
        pass
    assert not (tmp_path / "new" / "run").exists()
    with lra_training.lock_folder(tmp_path / "kept"):
        (tmp_path / "kept" / "file").write_text("x")
    assert (tmp_path / "kept" / "file").is_file()


def test_a_lock_file_left_by_a_dead_holder_does_not_block(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    # What a killed holder leaves: its record, but no lock (the kernel released it with the process).
    (folder / lra_training.LOCK_FILE).write_text(
        json.dumps({"pid": 999_999, "host": "h", "since": "s", "command": ""})
    )
    with lra_training.lock_folder(folder):
        record = json.loads((folder / lra_training.LOCK_FILE).read_text())
        assert record["pid"] == os.getpid()


def test_a_lock_folder_that_is_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(lra_training.UsageError, match=f"--output_dir {tmp_path / 'file'}: cannot create its lock"):
        with lra_training.lock_folder(tmp_path / "file", "--output_dir"):
            pass


@pytest.mark.slow  # a subprocess
def test_a_lock_held_by_another_process_is_refused_until_it_is_killed(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); import lra_training\n"
            "with lra_training.lock_folder(sys.argv[2]):\n"
            "    print('locked', flush=True); time.sleep(300)\n",
            str(EXAMPLES),
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=SUBPROCESS_ENV,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(lra_training.FolderInUseError, match=f"pid {holder.pid} on"):
            with lra_training.lock_folder(folder):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert (folder / lra_training.LOCK_FILE).exists()  # SIGKILL: no clean-up ran...
    with lra_training.lock_folder(folder):  # ... and the lock is free all the same
        pass


# ---------------------------------------------------------------------------------------------------------------------
# Number checks
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, bounds, message",
    [
        (float("nan"), {"minimum": 0}, "--x must be a finite number, not nan"),
        (float("inf"), {"minimum": 0}, "--x must be a finite number, not inf"),
        (-1.0, {"minimum": 0}, "--x must be a finite number >= 0, not -1"),
        (
            1.0,
            {"minimum": 0, "maximum": 1, "exclusive_maximum": True},
            "--x must be a finite number >= 0 and < 1, not 1",
        ),
        (0.0, {"minimum": 0, "exclusive_minimum": True}, "--x must be a finite number > 0, not 0"),
        (True, {}, "--x must be a finite number, not True"),
    ],
)
def test_check_number_refuses(value, bounds, message):
    with pytest.raises(lra_training.UsageError) as error:
        lra_training.check_number("--x", value, **bounds)
    assert str(error.value) == message


def test_check_number_accepts_the_bounds():
    lra_training.check_number("--x", 0.0, minimum=0, maximum=1)
    lra_training.check_number("--x", 1, minimum=0, maximum=1)
    lra_training.check_number("--x", 0.999, minimum=0, maximum=1, exclusive_maximum=True)


# ---------------------------------------------------------------------------------------------------------------------
# Non-finite numbers stop a run
# ---------------------------------------------------------------------------------------------------------------------


def test_first_non_finite_names_the_tensor():
    tensors = [("a", torch.ones(3)), ("b", None), ("c", torch.tensor([1.0, float("inf")])), ("d", torch.zeros(2))]
    assert training_checks.first_non_finite(tensors) == "c"
    assert training_checks.first_non_finite([("a", torch.full((2,), 3e38))]) is None  # huge is still finite
    assert training_checks.first_non_finite([("a", torch.tensor([float("nan")], dtype=torch.bfloat16))]) == "a"
    assert training_checks.first_non_finite([]) is None


def test_check_finite_model_and_loss():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    training_checks.check_finite_model(model, step=1)
    model(torch.ones(1, 2)).sum().backward()
    training_checks.check_finite_model(model, step=1, gradients=True)
    with torch.no_grad():
        model[1].bias.fill_(float("nan"))
    with pytest.raises(training_checks.NonFiniteError, match=r"at step 7: the weights of 1.bias hold NaN or inf"):
        training_checks.check_finite_model(model, step=7)
    model[0].weight.grad[0, 0] = float("inf")
    with pytest.raises(training_checks.NonFiniteError, match="the gradients of 0.weight hold NaN or inf"):
        training_checks.check_finite_model(model, step=7, gradients=True)
    training_checks.check_finite_loss(torch.tensor(2.5), step=1)
    with pytest.raises(training_checks.NonFiniteError, match="the loss is nan"):
        training_checks.check_finite_loss(torch.tensor(float("nan")), step=3)
    with pytest.raises(training_checks.NonFiniteError, match="eval_loss=nan"):
        training_checks.check_finite_values({"eval_loss": float("nan"), "epoch": 1.0}, step=3, what="evaluation")


# ---------------------------------------------------------------------------------------------------------------------
# compare_runs: the conclusion is computed from the numbers
# ---------------------------------------------------------------------------------------------------------------------


def row(name: str, accuracy: float | None, examples: int | None = 500) -> dict:
    return {"run": name, "test accuracy": accuracy, "test examples": examples}


def test_conclusion_says_no_difference_only_when_within_two_standard_errors():
    close = compare_runs.compare_accuracies(row("LaS", 0.50), row("softmax", 0.52))
    # se = sqrt(.5 * .5 / 500) = 0.0224 and sqrt(.52 * .48 / 500) = 0.0223; difference -0.02 +- 0.0316
    assert "LaS 0.5000 ± 0.0224 (n = 500), softmax 0.5200 ± 0.0223 (n = 500)" in close
    assert "difference -0.0200 ± 0.0316" in close and "no difference distinguishable at this size" in close
    far = compare_runs.compare_accuracies(row("LaS", 0.62), row("softmax", 0.50))
    assert "LaS is more accurate than softmax (3.9 standard errors)" in far
    assert "no difference" not in far
    # Around the threshold of 2 standard errors (about 0.063 here): 0.06 is within it, 0.07 beyond.
    assert "no difference" in compare_runs.compare_accuracies(row("LaS", 0.50), row("softmax", 0.56))
    assert "softmax is more accurate" in compare_runs.compare_accuracies(row("LaS", 0.50), row("softmax", 0.57))
    reverse = compare_runs.compare_accuracies(row("LaS", 0.30), row("softmax", 0.90, 2_000))
    assert "softmax is more accurate than LaS" in reverse and "the test sets differ in size" in reverse
    assert "no comparison, softmax has no test accuracy" in compare_runs.compare_accuracies(
        row("LaS", 0.5), row("softmax", None)
    )


def write_run(folder: Path, accuracy: float, examples: int) -> Path:
    folder.mkdir()
    (folder / "all_results.json").write_text(json.dumps({"test_accuracy": accuracy, "test_samples": examples}))
    (folder / "config.json").write_text(json.dumps({"attention_type": folder.name}))
    history = [{"step": 1, "loss": 2.0}, {"step": 2, "eval_accuracy": accuracy, "eval_loss": 1.0}]
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    return folder


@pytest.mark.parametrize(
    "accuracies, expected",
    [((0.91, 0.42), "las is more accurate than softmax"), ((0.48, 0.50), "no difference distinguishable")],
)
def test_compare_runs_prints_and_writes_the_computed_conclusion(tmp_path, capsys, accuracies, expected):
    runs = [write_run(tmp_path / name, accuracy, 500) for name, accuracy in zip(("las", "softmax"), accuracies)]
    compare_runs.main([*map(str, runs), "--output_dir", str(tmp_path / "out"), "--note", "setup caveats"])
    printed = capsys.readouterr().out
    assert f"Conclusion: test accuracy las {accuracies[0]:.4f}" in printed and expected in printed
    written = (tmp_path / "out" / "comparison.md").read_text()
    assert expected in written and written.index("Conclusion") < written.index("setup caveats")


def test_quickstart_states_no_result_of_its_own():
    """Its note is about the setup; the conclusion about the numbers is compare_runs.py's, computed."""
    script = (EXAMPLES / "quickstart.sh").read_text()
    note = script.split("--note", 1)[1].split("\necho", 1)[0]
    for claim in ("as well as", "sit near the same accuracy", "better than", "outperforms"):
        assert claim not in note, claim
