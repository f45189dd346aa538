# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""A small byte-level language model: LaS against softmax attention and against LaS without smoothing (decay only).

The paper's reviewers report that smoothing hurt perplexity in a language model; this script measures it on a corpus
built from local text files (default: the `.py` sources of the running interpreter's standard library), split by file
into train / validation / test with a fixed seed. Every variant trains with the same data order, steps and seed, and
the script writes, under `--output_dir`:

    results.md      validation perplexity per epoch and test perplexity of every variant
    perplexity.png  validation perplexity against the epoch
    samples.md      greedy `generate()` continuations (batched, left-padded prompts, KV cache) of every variant
    metrics.json    everything above as numbers

    OMP_NUM_THREADS=1 python examples/run_lm.py --output_dir examples/results/lm
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from configuration_las import LaSConfig  # noqa: E402
from modeling_las import LaSForCausalLM  # noqa: E402

#: The compared models: name -> LaSConfig fields on top of the shared ones.
VARIANTS = {
    "las": dict(attention_type="las", las_pool_size=3),
    "softmax": dict(attention_type="softmax"),
    "decay_only": dict(attention_type="las", las_pool_size=1),
}
VOCAB_SIZE = 256  # bytes; 0 (NUL, absent from source files) doubles as the padding id
PROMPTS = ("import ", "def __init__(self", "    for i in range(", "class ")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus_dir",
        type=Path,
        default=Path(sysconfig.get_paths()["stdlib"]),
        help="directory searched recursively for --pattern files (default: the Python standard library)",
    )
    parser.add_argument("--pattern", default="*.py")
    parser.add_argument("--output_dir", type=Path, default=Path("examples/results/lm"))
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max_split_bytes",
        type=int,
        default=2_000_000,
        help="at most this many bytes of each split (files in split order)",
    )
    parser.add_argument("--context", type=int, default=128, help="training window in bytes")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps_per_epoch", type=int, default=500)
    parser.add_argument("--eval_windows", type=int, default=64, help="validation / test windows of --context bytes")
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--hidden_size", type=int, default=96)
    parser.add_argument("--num_hidden_layers", type=int, default=2)
    parser.add_argument("--num_attention_heads", type=int, default=4)
    parser.add_argument("--las_alpha_max", type=float, default=0.1)
    parser.add_argument("--sample_tokens", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    return args


# -- data -------------------------------------------------------------------------------------------------------------


def split_files(corpus_dir: Path, pattern: str, seed: int) -> dict[str, list[Path]]:
    """Every matching file, shuffled with `seed`, split 80 / 10 / 10 % by file into train / validation / test."""
    files = sorted(p for p in corpus_dir.rglob(pattern) if p.is_file() and "site-packages" not in p.parts)
    if len(files) < 3:
        raise SystemExit(f"--corpus_dir {corpus_dir}: found {len(files)} files matching {pattern!r}; need at least 3.")
    random.Random(seed).shuffle(files)
    n_val = n_test = max(1, len(files) // 10)
    return {"validation": files[:n_val], "test": files[n_val : n_val + n_test], "train": files[n_val + n_test :]}


def read_bytes(files: Sequence[Path], max_bytes: int) -> torch.Tensor:
    """The files' bytes, concatenated (a newline between files), up to `max_bytes`; NUL bytes dropped (padding id)."""
    chunks, total = [], 0
    for path in files:
        data = path.read_bytes().replace(b"\0", b"") + b"\n"
        chunks.append(data[: max_bytes - total])
        total += len(chunks[-1])
        if total >= max_bytes:
            break
    return torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8).long()


def eval_windows(stream: torch.Tensor, context: int, count: int) -> torch.Tensor:
    """`count` windows of `context + 1` bytes spread evenly over the stream (the same for every variant)."""
    starts = torch.linspace(0, len(stream) - context - 2, count).long()
    return torch.stack([stream[s : s + context + 1] for s in starts.tolist()])


# -- training ---------------------------------------------------------------------------------------------------------


def build_model(args: argparse.Namespace, variant: str) -> LaSForCausalLM:
    torch.manual_seed(args.seed)
    config = LaSConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        max_position_embeddings=args.context + args.sample_tokens + max(map(len, PROMPTS)),
        las_alpha_max=args.las_alpha_max,
        las_pool_mode="causal",  # a language model must not look ahead (see LaSForCausalLM)
        **VARIANTS[variant],
    )
    return LaSForCausalLM(config)


@torch.no_grad()
def perplexity(model: LaSForCausalLM, windows: torch.Tensor, batch_size: int) -> float:
    model.eval()
    losses = [model(batch, labels=batch).loss.item() for batch in windows.split(batch_size)]
    return math.exp(sum(losses) / len(losses))


def train_variant(args: argparse.Namespace, variant: str, data: dict[str, torch.Tensor]) -> dict:
    model = build_model(args, variant)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    total_steps = args.epochs * args.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, args.learning_rate, total_steps=total_steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(args.seed)  # the same batches for every variant
    validation = eval_windows(data["validation"], args.context, args.eval_windows)
    history, started = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        for _ in range(args.steps_per_epoch):
            starts = torch.randint(0, len(data["train"]) - args.context - 1, (args.batch_size,), generator=generator)
            batch = torch.stack([data["train"][s : s + args.context + 1] for s in starts.tolist()])
            loss = model(batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        val_ppl = perplexity(model, validation, args.batch_size)
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "validation_perplexity": val_ppl})
        print(
            f"[{variant}] epoch {epoch}: train loss {history[-1]['train_loss']:.3f}, validation perplexity "
            f"{val_ppl:.3f}",
            flush=True,
        )
    seconds = time.perf_counter() - started
    test_ppl = perplexity(model, eval_windows(data["test"], args.context, args.eval_windows), args.batch_size)
    return {
        "variant": variant,
        "config": VARIANTS[variant],
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "test_perplexity": test_ppl,
        "train_seconds": seconds,
        "samples": greedy_samples(model, args.sample_tokens),
    }


@torch.no_grad()
def greedy_samples(model: LaSForCausalLM, max_new_tokens: int) -> list[str]:
    """Greedy continuations of `PROMPTS`, generated as one left-padded batch with the KV cache."""
    model.eval()
    encoded = [list(prompt.encode()) for prompt in PROMPTS]
    width = max(map(len, encoded))
    input_ids = torch.tensor([[0] * (width - len(ids)) + ids for ids in encoded])
    attention_mask = (input_ids != 0).long()
    output = model.generate(
        input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0
    )
    return [bytes(row[width:].tolist()).decode("utf-8", errors="replace") for row in output]


# -- reporting --------------------------------------------------------------------------------------------------------


def write_report(args: argparse.Namespace, results: list[dict], sizes: dict[str, int], output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    metrics = {"args": {k: str(v) for k, v in vars(args).items()}, "split_bytes": sizes, "results": results}
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    epochs = [h["epoch"] for h in results[0]["history"]]
    lines = [
        f"Byte-level LM on `{args.corpus_dir}` ({args.pattern}, split by file 80/10/10, seed {args.seed}; "
        f"bytes used: {', '.join(f'{k} {v:,}' for k, v in sizes.items())}). {args.num_hidden_layers} layers, width "
        f"{args.hidden_size}, {args.num_attention_heads} heads, context {args.context}, batch {args.batch_size}, "
        f"{args.epochs} x {args.steps_per_epoch} steps, B = {args.las_alpha_max}, causal pooling.",
        "",
        "| variant | attention | parameters | "
        + " | ".join(f"val ppl ep {e}" for e in epochs)
        + " | test ppl | train s |",
        "|---|---|---|" + "---|" * len(epochs) + "---|---|",
    ]
    for r in results:
        attention = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        per_epoch = " | ".join(f"{h['validation_perplexity']:.3f}" for h in r["history"])
        lines.append(
            f"| {r['variant']} | {attention} | {r['parameters']:,} | {per_epoch} | "
            f"{r['test_perplexity']:.3f} | "
            f"{r['train_seconds']:.0f} |"
        )
    (output_dir / "results.md").write_text("\n".join(lines) + "\n")
    samples = ["Greedy continuations (`generate()`, one left-padded batch, KV cache), per variant.", ""]
    for r in results:
        samples += [f"## {r['variant']}", ""]
        for prompt, text in zip(PROMPTS, r["samples"]):
            samples += ["```python", prompt + text, "```", ""]
    (output_dir / "samples.md").write_text("\n".join(samples))
    plot(results, output_dir / "perplexity.png")
    print("\n".join(lines))


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for r in results:
        axes.plot(
            [h["epoch"] for h in r["history"]],
            [h["validation_perplexity"] for h in r["history"]],
            marker="o",
            label=r["variant"],
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel("validation perplexity (bytes)")
    axes.set_title("Byte-level LM: LaS vs softmax vs decay only")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    files = split_files(args.corpus_dir, args.pattern, args.seed)
    data = {name: read_bytes(paths, args.max_split_bytes) for name, paths in files.items()}
    too_short = [name for name, stream in data.items() if len(stream) < args.context + 2]
    if too_short:
        raise SystemExit(f"--corpus_dir {args.corpus_dir}: split(s) {too_short} hold fewer than context + 2 bytes.")
    results = [train_variant(args, variant, data) for variant in args.variants.split(",")]
    write_report(args, results, {name: len(stream) for name, stream in data.items()}, args.output_dir)
    return results


if __name__ == "__main__":
    main()
