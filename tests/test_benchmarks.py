"""The benchmark scripts (examples/benchmarks) run end to end in --smoke mode and write their result files."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO_ROOT / "examples" / "benchmarks"
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """The scripts in --smoke mode on CPU, as parallel processes (each is single-threaded in smoke mode)."""
    out = tmp_path_factory.mktemp("benchmarks")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    commands = {
        "attention": [sys.executable, str(BENCHMARKS / "attention.py"), "--smoke", "--check", "--device", "cpu"],
        "train": [sys.executable, str(BENCHMARKS / "train_throughput.py"), "--smoke", "--device", "cpu"],
        "block_mask": [sys.executable, str(BENCHMARKS / "block_mask.py"), "--smoke", "--device", "cpu"],
    }
    processes = {
        name: subprocess.Popen(
            [*command, "--out", str(out)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for name, command in commands.items()
    }
    results = {}
    for name, process in processes.items():
        try:
            output, _ = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        results[name] = (process.returncode, output)
    return out, results


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_attention_smoke_writes_results_and_passes_check(smoke_runs):
    out, results = smoke_runs
    returncode, output = results["attention"]
    assert returncode == 0, output[-4000:]
    for suffix in (".csv", ".md", ".png"):
        assert (out / f"attention_cpu{suffix}").stat().st_size > 0
    rows = read_csv(out / "attention_cpu.csv")
    assert {"method", "mode", "length", "status", "time_ms", "peak_mem_mib", "max_abs_diff", "check"} <= set(rows[0])
    assert {r["method"] for r in rows} == {"las_flex", "las_eager", "las_chunk", "naive", "sdpa"}
    assert {r["mode"] for r in rows} == {"fwd", "fwd_bwd"}
    assert {int(r["length"]) for r in rows} == {64, 128}
    for row in rows:
        if row["method"] == "las_flex" and row["mode"] == "fwd_bwd":
            assert row["status"] == "n/a (CPU)"  # torch has no CPU flex backward
        elif row["method"] == "las_flex" and int(row["length"]) > 64:
            assert row["status"].startswith("skipped")  # smoke compiles flex for one length only
        else:
            assert row["status"] == "ok", row
            assert float(row["time_ms"]) > 0 and float(row["peak_mem_mib"]) > 0
    # --check: every LaS method that ran equals the naive definition (fp32 tolerance 1e-4); sdpa is not LaS
    checked = [r for r in rows if r["check"] not in ("", "skipped")]
    assert {r["method"] for r in checked} == {"las_flex", "las_eager", "las_chunk", "naive"}
    for row in checked:
        assert row["check"] == "PASS" and float(row["max_abs_diff"]) < 1e-4, row
    assert all(r["check"] == "" for r in rows if r["method"] == "sdpa")
    markdown = (out / "attention_cpu.md").read_text()
    assert "## Correctness (--check)" in markdown and "| L | las_flex ms |" in markdown
    assert "torch:" in markdown and "command: `python examples/benchmarks/attention.py --smoke" in markdown


def test_attention_training_memory_is_blocked_not_quadratic(smoke_runs):
    # At L=128 with query blocks of 32 the eager path recomputes blocks in backward: less memory than the definition.
    out, _ = smoke_runs
    rows = {(r["method"], r["mode"], int(r["length"])): r for r in read_csv(out / "attention_cpu.csv")}
    eager, naive = rows[("las_eager", "fwd_bwd", 128)], rows[("naive", "fwd_bwd", 128)]
    assert float(eager["peak_mem_mib"]) < float(naive["peak_mem_mib"])


def test_train_throughput_smoke_writes_results(smoke_runs):
    out, results = smoke_runs
    returncode, output = results["train"]
    assert returncode == 0, output[-4000:]
    rows = read_csv(out / "train_throughput_cpu.csv")
    assert {"task", "attention_type", "attn_implementation", "step_ms", "tokens_per_s", "peak_mem_mib",
            "time_vs_softmax"} <= set(rows[0])  # fmt: skip
    assert [r["attention_type"] for r in rows] == ["las", "las_chunk", "softmax"]
    for row in rows:
        assert row["status"] == "ok" and row["attn_implementation"] == "eager"
        tokens_per_s, step_ms = float(row["tokens_per_s"]), float(row["step_ms"])
        assert math.isclose(tokens_per_s, int(row["batch"]) * int(row["length"]) / (step_ms / 1e3), rel_tol=1e-3)
        assert float(row["peak_mem_mib"]) > 0
    assert float(rows[-1]["time_vs_softmax"]) == 1.0
    markdown = (out / "train_throughput_cpu.md").read_text()
    assert "| task | attention | backend |" in markdown and "## Targets" in markdown


def test_naive_definition_matches_las_attention_in_float64():
    # The benchmark's literal definition is itself right: float64, both pooling windows, against the model's kernel.
    import torch

    sys.path.insert(0, str(BENCHMARKS))
    try:
        from attention import naive_las, naive_reference
    finally:
        sys.path.remove(str(BENCHMARKS))
    from las_attention import las_attention

    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, 50, 8, generator=generator, dtype=torch.float64) for _ in range(3))
    alphas = torch.tensor([0.0, 0.05, 0.5], dtype=torch.float64)
    for pool_mode in ("symmetric", "causal"):
        expected = las_attention(query, key, value, alphas, 3, pool_mode, True)
        assert torch.allclose(naive_las(query, key, value, alphas, 3, pool_mode, True), expected, atol=1e-12)
    # the blocked float32 reference, and its LaS-chunk form (the definition on each chunk)
    blocked = naive_reference(query, key, value, alphas, 3, "symmetric", max_block_bytes=4 * 2 * 3 * 50 * 7)
    assert torch.allclose(blocked.double(), las_attention(query, key, value, alphas, 3), atol=1e-5)
    chunked = naive_reference(query, key, value, alphas, 3, "symmetric", chunk_size=16)
    assert torch.allclose(chunked.double(), las_attention(query, key, value, alphas, 3, chunk_size=16), atol=1e-5)


@pytest.mark.parametrize("name", ["gpu_check.sh", "fetch_gpu_wheels.sh", "gpu_image_stack_on_cpu.sh"])
def test_shell_script_is_valid_bash(name):
    script = BENCHMARKS / name
    assert script.exists()
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "set -euo pipefail" in script.read_text()


def test_gpu_check_script_names_its_stages():
    text = (BENCHMARKS / "gpu_check.sh").read_text()
    assert "attention.py" in text and "train_throughput.py" in text and "test_las_attention.py" in text


def test_rehearsal_deselects_only_existing_tests_that_gpu_check_skips():
    """gpu_image_stack_on_cpu.sh deselects its known failures by node id: each must still name a test, and none may
    be one of the `-k cuda` tests gpu_check.sh runs (deselecting those would hide a real GPU-image failure)."""
    text = (BENCHMARKS / "gpu_image_stack_on_cpu.sh").read_text()
    block = text.split("KNOWN_FAILURES=(", 1)[1].split(")", 1)[0]
    node_ids = [line.strip() for line in block.splitlines() if line.strip().startswith("tests/")]
    assert len(node_ids) == 3
    for node_id in node_ids:
        path, name = node_id.split("::")
        assert f"def {name}(" in (REPO_ROOT / path).read_text(), node_id
        assert "cuda" not in node_id.lower(), node_id  # `-k cuda` matches module names too, case-insensitively
    assert '"${KNOWN_FAILURES[@]/#/--deselect=}"' in text


def test_block_mask_smoke_writes_results_and_ours_needs_no_quadratic_memory(smoke_runs):
    out, results = smoke_runs
    returncode, output = results["block_mask"]
    assert returncode == 0, output[-4000:]
    assert "| mask | L | ours ms | create_block_mask ms |" in (out / "block_mask_cpu.md").read_text()
    rows = read_csv(out / "block_mask_cpu.csv")
    assert {(r["mask"], int(r["length"])) for r in rows} == {
        (mask, length) for mask in ("causal", "causal + padding") for length in (128, 256)
    }
    for row in rows:
        assert row["status"] == "ok" and float(row["build_ms"]) > 0
    peak = {(r["mask"], int(r["length"]), r["method"]): float(r["peak_mem_mib"]) for r in rows}
    # create_block_mask holds batch x L x L booleans (8 x 256 x 256 = 0.5 MiB); ours only per-block counts.
    padded = ("causal + padding", 256)
    assert peak[(*padded, "create_block_mask")] >= 8 * 256 * 256 / 2**20
    assert peak[(*padded, "las_flex_block_mask")] < peak[(*padded, "create_block_mask")] / 20
