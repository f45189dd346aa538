# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""LaS in a transformers architecture: a tiny Llama (or Qwen2, GPT-NeoX) with `attn_implementation="sdpa"` against
`"las"` on the byte-level corpus of `run_lm.py`.

Every implementation trains the same model (same config, same initial weights from the same seed), on the same
batches, for the same steps; only the attention function differs. The corpus, its split and the evaluation windows are
`run_lm.py`'s. The script writes, under `--output_dir`:

    results.md    validation perplexity per epoch and test perplexity of every implementation
    samples.md    greedy `generate()` continuations (batched, left-padded prompts, transformers' DynamicCache)
    metrics.json  everything above as numbers

    OMP_NUM_THREADS=1 python examples/run_lm_hf.py --architecture llama --output_dir examples/results/lm_llama
    python examples/run_lm_hf.py --smoke --corpus_dir some/folder   # a seconds-long run of every code path
"""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig, PreTrainedConfig, Qwen2Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling run_lm.py

from run_lm import PROMPTS, VOCAB_SIZE, eval_windows, fit, greedy_samples, perplexity, read_bytes, split_files

import las_interface

las_interface.register()

ARCHITECTURES = {"llama": LlamaConfig, "qwen2": Qwen2Config, "gpt_neox": GPTNeoXConfig}
IMPLEMENTATIONS = ("sdpa", "eager", "las", "las_chunk")
#: `--smoke`: sizes small enough for a test (seconds on one CPU core).
SMOKE = dict(epochs=1, steps_per_epoch=3, context=32, batch_size=4, eval_windows=4, hidden_size=16, sample_tokens=4)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="llama")
    parser.add_argument(
        "--implementations",
        default="sdpa,las",
        help=f"comma-separated attn_implementation values to compare, from {list(IMPLEMENTATIONS)}",
    )
    parser.add_argument(
        "--corpus_dir",
        type=Path,
        default=Path(sysconfig.get_paths()["stdlib"]),
        help="directory searched recursively for --pattern files (default: the Python standard library)",
    )
    parser.add_argument("--pattern", default="*.py")
    parser.add_argument("--output_dir", type=Path, default=Path("examples/results/lm_hf"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_split_bytes", type=int, default=2_000_000)
    parser.add_argument("--context", type=int, default=128, help="training window in bytes")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps_per_epoch", type=int, default=500)
    parser.add_argument("--eval_windows", type=int, default=64, help="validation / test windows of --context bytes")
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--hidden_size", type=int, default=96)
    parser.add_argument("--num_hidden_layers", type=int, default=2)
    parser.add_argument("--num_attention_heads", type=int, default=4)
    parser.add_argument(
        "--num_key_value_heads",
        type=int,
        default=2,
        help="grouped-query attention (Llama, Qwen2; ignored by GPT-NeoX)",
    )
    parser.add_argument("--las_alpha_max", type=float, default=0.1)
    parser.add_argument("--las_pool_size", type=int, default=3)
    parser.add_argument("--las_chunk_size", type=int, default=64, help="chunk length of las_chunk")
    parser.add_argument("--sample_tokens", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--smoke", action="store_true", help=f"tiny sizes for a test run: {SMOKE}")
    args = parser.parse_args(argv)
    if args.smoke:
        for field, value in SMOKE.items():
            setattr(args, field, value)
    unknown = sorted(set(args.implementations.split(",")) - set(IMPLEMENTATIONS))
    if unknown:
        parser.error(f"--implementations: unknown {unknown}; choose from {list(IMPLEMENTATIONS)}")
    if args.hidden_size % args.num_attention_heads or args.num_attention_heads % args.num_key_value_heads:
        parser.error(
            f"--hidden_size {args.hidden_size} must be divisible by --num_attention_heads {args.num_attention_heads}, "
            f"and that by --num_key_value_heads {args.num_key_value_heads}."
        )
    return args


def model_config(args: argparse.Namespace) -> PreTrainedConfig:
    """The architecture's config at the script's size, with the LaS fields (read only by "las" / "las_chunk")."""
    sizes = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=args.hidden_size,
        intermediate_size=4 * args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        max_position_embeddings=args.context + args.sample_tokens + max(map(len, PROMPTS)),
        # Byte 0 (NUL, absent from the corpus) pads; no byte ends a generation early.
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
        las_alpha_max=args.las_alpha_max,
        las_pool_size=args.las_pool_size,
        las_pool_mode="causal",  # a language model must not look ahead
        las_chunk_size=args.las_chunk_size,
    )
    if args.architecture != "gpt_neox":
        sizes["num_key_value_heads"] = args.num_key_value_heads
    return ARCHITECTURES[args.architecture](**sizes)


def train_implementation(args: argparse.Namespace, implementation: str, data: dict[str, torch.Tensor]) -> dict:
    torch.manual_seed(args.seed)  # the same initial weights for every implementation
    model = AutoModelForCausalLM.from_config(model_config(args), attn_implementation=implementation)
    history, seconds = fit(model, args, data, args.seed, implementation)  # run_lm.py's training loop
    test_ppl = perplexity(model, eval_windows(data["test"], args.context, args.eval_windows), args.batch_size)
    return {
        "implementation": implementation,
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "test_perplexity": test_ppl,
        "train_seconds": seconds,
        "samples": greedy_samples(model, args.sample_tokens),
    }


def write_report(args: argparse.Namespace, results: list[dict], sizes: dict[str, int]) -> None:
    args.output_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"args": {k: str(v) for k, v in vars(args).items()}, "split_bytes": sizes, "results": results}
    (args.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    epochs = [h["epoch"] for h in results[0]["history"]]
    lines = [
        f"Byte-level LM, `{args.architecture}` from transformers, on `{args.corpus_dir}` ({args.pattern}, split by "
        f"file 80/10/10, seed {args.seed}; bytes used: {', '.join(f'{k} {v:,}' for k, v in sizes.items())}). "
        f"{args.num_hidden_layers} layers, width {args.hidden_size}, {args.num_attention_heads} heads, context "
        f"{args.context}, batch {args.batch_size}, {args.epochs} x {args.steps_per_epoch} steps; LaS: B = "
        f"{args.las_alpha_max}, P = {args.las_pool_size}, causal pooling. Same initial weights and batches for all.",
        "",
        "| attn_implementation | parameters | "
        + " | ".join(f"val ppl ep {e}" for e in epochs)
        + " | test ppl | train s |",
        "|---|---|" + "---|" * len(epochs) + "---|---|",
    ]
    for r in results:
        per_epoch = " | ".join(f"{h['validation_perplexity']:.3f}" for h in r["history"])
        lines.append(
            f"| {r['implementation']} | {r['parameters']:,} | {per_epoch} | {r['test_perplexity']:.3f} | "
            f"{r['train_seconds']:.0f} |"
        )
    (args.output_dir / "results.md").write_text("\n".join(lines) + "\n")
    samples = ["Greedy continuations (`generate()`, one left-padded batch, DynamicCache), per implementation.", ""]
    for r in results:
        samples += [f"## {r['implementation']}", ""]
        for prompt, text in zip(PROMPTS, r["samples"]):
            samples += ["```python", prompt + text, "```", ""]
    (args.output_dir / "samples.md").write_text("\n".join(samples))
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    files = split_files(args.corpus_dir, args.pattern, args.seed)
    data = {name: read_bytes(paths, args.max_split_bytes) for name, paths in files.items()}
    too_short = [name for name, stream in data.items() if len(stream) < args.context + 2]
    if too_short:
        raise SystemExit(f"--corpus_dir {args.corpus_dir}: split(s) {too_short} hold fewer than context + 2 bytes.")
    results = [train_implementation(args, name, data) for name in args.implementations.split(",")]
    write_report(args, results, {name: len(stream) for name, stream in data.items()})
    return results


if __name__ == "__main__":
    main()
