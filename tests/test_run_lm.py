"""examples/run_lm.py: seeded, resumable LM runs, the paired report, and arguments refused before any work."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.utils import import_example

run_lm = import_example("run_lm")
study_support = import_example("study_support")

TINY = [
    "--epochs",
    "2",
    "--steps_per_epoch",
    "3",
    "--context",
    "32",
    "--batch_size",
    "4",
    "--eval_windows",
    "4",
    "--hidden_size",
    "16",
    "--num_hidden_layers",
    "1",
    "--num_attention_heads",
    "2",
    "--sample_tokens",
    "5",
]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i in range(10):
        (folder / f"module_{i}.py").write_text(f"def function_{i}(x):\n    return x * {i} + {i}\n" * 20)
    return folder


def run(corpus: Path, out: Path, *extra: str) -> list[dict]:
    return run_lm.main(["--corpus_dir", str(corpus), "--output_dir", str(out), *TINY, *extra])


def test_seeds_and_variants_give_paired_tables_and_a_rerun_resumes(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    variants = "las,softmax,alibi,softmax_nope"
    runs = run(corpus, out, "--variants", variants, "--seeds", "0", "1", "--eval_contexts", "32", "64")
    assert sorted((r["variant"], r["seed"]) for r in runs) == sorted(
        (v, s) for v in variants.split(",") for s in (0, 1)
    )
    for r in runs:
        assert len(r["history"]) == 2 and set(r["test_perplexity"]) == {"32", "64"}
        assert all(0 < ppl < 256 for ppl in r["test_perplexity"].values())
    with open(out / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 4 * 2 * 2 and {row["eval_context"] for row in rows} == {"32", "64"}
    table = (out / "results.md").read_text()
    assert "| las - softmax | 32 | 2 |" in table and "| softmax_nope - softmax | 64 | 2 |" in table
    # The same seed gives the same initial weights and batches: softmax with seed 0 twice is one run file.
    capsys.readouterr()
    again = run(corpus, out, "--variants", "softmax", "--seeds", "0", "--eval_contexts", "32", "64")
    assert "done before" in capsys.readouterr().out
    assert len(again) == 8  # the report still covers every run file
    # A changed setting is a new run; a corrupt run file is named, ignored and redone.
    run(corpus, out, "--variants", "softmax", "--seeds", "0", "--eval_contexts", "32")
    assert len(list((out / "runs").glob("softmax__seed0__*.json"))) == 2
    broken = next((out / "runs").glob("las__seed1__*.json"))
    broken.write_text("{")
    redone = run(corpus, out, "--variants", "las", "--seeds", "1", "--eval_contexts", "32", "64")
    assert "is not a valid run file" in capsys.readouterr().out
    assert json.loads(broken.read_text())["variant"] == "las" and len(redone) == 9


def test_identical_seeds_give_identical_runs(corpus, tmp_path):
    first = run(corpus, tmp_path / "a", "--variants", "las", "--seeds", "3")
    second = run(corpus, tmp_path / "b", "--variants", "las", "--seeds", "3")
    assert first[0]["test_perplexity"] == second[0]["test_perplexity"]


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--context", "0"], "--context must be at least 1"),
        (["--max_split_bytes", "-5"], "--max_split_bytes must be at least 1"),
        (["--learning_rate", "nan"], "--learning_rate must be a finite number > 0"),
        (["--variants", "las,linear"], "unknown ['linear']"),
        (["--seeds", "-1"], "--seeds and --split_seed must be >= 0"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(flags, message, corpus, tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(corpus, tmp_path / "out", *flags)
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_output_dir_that_is_a_file_is_refused(corpus, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    with pytest.raises(SystemExit):
        run(corpus, target)
    assert "exists and is not a folder" in capsys.readouterr().err


def test_a_diverging_run_stops_and_saves_nothing(corpus, tmp_path):
    with pytest.raises(RuntimeError, match="the training loss became"):
        run(corpus, tmp_path / "out", "--variants", "softmax", "--learning_rate", "1e30")
    assert not list((tmp_path / "out" / "runs").glob("*.json"))


def test_a_busy_output_dir_is_refused(corpus, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with study_support.FolderLock(out), pytest.raises(SystemExit, match="is in use by"):
        run(corpus, out, "--variants", "softmax")
