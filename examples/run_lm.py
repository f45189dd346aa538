# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""A small byte-level language model, replicated over seeds: LaS against softmax, ALiBi, LaS without smoothing
(decay only) and softmax without position embeddings.

The paper's reviewers report that smoothing hurt perplexity in a language model; this script measures it on a corpus
built from local text files (default: the `.py` sources of the running interpreter's standard library), split by file
into train / validation / test with a fixed `--split_seed`. A seed gives every variant the same initial weights (where
shapes match) and the same batches, so variants are compared seed by seed (paired differences, 95% t intervals).
Each (variant, seed) run is saved as it ends (`runs/<variant>__seed<s>__<settings hash>.json`), so an interrupted
invocation resumes; the tables are rebuilt from every run file of the folder. Under `--output_dir`:

    results.md      test perplexity per variant (mean over seeds, at every --eval_contexts), paired differences
    results.csv     one row per (variant, seed, evaluation context)
    perplexity.png  validation perplexity against the epoch (seed 0) and test perplexity per seed
    samples.md      greedy `generate()` continuations (batched, left-padded prompts, KV cache), lowest seed

    OMP_NUM_THREADS=1 python examples/run_lm.py --output_dir examples/results/lm --seeds 0 1 2 3 4
    OMP_NUM_THREADS=1 python examples/run_lm.py --output_dir examples/results/lm512 --context 512 --batch_size 4 \
        --eval_contexts 512 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import sysconfig
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]  # a checkout

from study_support import (  # noqa: E402
    FolderBusyError,
    FolderLock,
    code_version,
    format_interval,
    mean_interval,
    settings_hash,
    verdict,
    write_atomically,
)

from configuration_las import LaSConfig  # noqa: E402
from modeling_las import LaSForCausalLM  # noqa: E402

#: The compared models: name -> LaSConfig fields on top of the shared ones.
VARIANTS = {
    "las": dict(attention_type="las", las_pool_size=3),
    "softmax": dict(attention_type="softmax"),
    "decay_only": dict(attention_type="las", las_pool_size=1),
    "alibi": dict(attention_type="alibi"),
    "softmax_nope": dict(attention_type="softmax", position_embedding_type="none"),
}
#: The paired comparisons of the report, (variant, baseline).
COMPARISONS = (
    ("las", "softmax"),
    ("decay_only", "softmax"),
    ("alibi", "softmax"),
    ("softmax_nope", "softmax"),
    ("las", "alibi"),
    ("las", "decay_only"),
)
#: The arguments that do not change a run's result (its file name hashes all the others).
UNRECORDED_ARGS = ("output_dir", "variants", "seeds", "threads")
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per variant and seed")
    parser.add_argument("--split_seed", type=int, default=0, help="the train/validation/test split of the files")
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
    parser.add_argument("--eval_windows", type=int, default=1024, help="validation / test windows per context")
    parser.add_argument(
        "--eval_contexts",
        type=int,
        nargs="+",
        help="test at these window lengths (default: --context); longer than --context tests length extrapolation",
    )
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
    args.eval_contexts = args.eval_contexts or [args.context]
    positive = ["context", "batch_size", "epochs", "steps_per_epoch", "eval_windows", "max_split_bytes"]
    positive += ["hidden_size", "num_hidden_layers", "num_attention_heads", "threads"]
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    if min(args.eval_contexts) < 1:
        parser.error(f"--eval_contexts must be at least 1, not {min(args.eval_contexts)}")
    if min(args.seeds) < 0 or args.split_seed < 0:
        parser.error("--seeds and --split_seed must be >= 0")
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        parser.error(f"--learning_rate must be a finite number > 0, not {args.learning_rate}")
    if not (math.isfinite(args.las_alpha_max) and args.las_alpha_max >= 0):
        parser.error(f"--las_alpha_max must be a finite number >= 0, not {args.las_alpha_max}")
    if args.output_dir.exists() and not args.output_dir.is_dir():
        parser.error(f"--output_dir {args.output_dir} exists and is not a folder")
    if not args.corpus_dir.is_dir():
        parser.error(f"--corpus_dir {args.corpus_dir} is not a folder")
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


def build_model(args: argparse.Namespace, variant: str, seed: int) -> LaSForCausalLM:
    torch.manual_seed(seed)
    longest = max(args.context, *args.eval_contexts) + 1  # windows hold context + 1 bytes
    config = LaSConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_hidden_layers,
        num_attention_heads=args.num_attention_heads,
        max_position_embeddings=max(longest, args.context + args.sample_tokens + max(map(len, PROMPTS))),
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


def fit(
    model: torch.nn.Module, args: argparse.Namespace, data: dict[str, torch.Tensor], seed: int, label: str
) -> tuple[list[dict], float]:
    """Train `model` for `args.epochs` x `args.steps_per_epoch` steps on random windows of the training stream (the
    same batches for every model trained with `seed`); return the per-epoch history and the training seconds.

    Shared by every model this corpus trains (`run_lm_hf.py` too). A non-finite loss or validation perplexity stops
    training with an error, before anything is saved.
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    total_steps = args.epochs * args.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, args.learning_rate, total_steps=total_steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(seed)  # the same batches for every model of a seed
    validation = eval_windows(data["validation"], args.context, args.eval_windows)
    history, started = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        for _ in range(args.steps_per_epoch):
            starts = torch.randint(0, len(data["train"]) - args.context - 1, (args.batch_size,), generator=generator)
            batch = torch.stack([data["train"][s : s + args.context + 1] for s in starts.tolist()])
            loss = model(batch, labels=batch).loss
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"[{label}] the training loss became {loss.item()} at epoch {epoch}: stopped, nothing saved "
                    "(lower --learning_rate?)"
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        val_ppl = perplexity(model, validation, args.batch_size)
        if not math.isfinite(val_ppl):
            raise RuntimeError(f"[{label}] validation perplexity {val_ppl} at epoch {epoch}: stopped")
        history.append({"epoch": epoch, "train_loss": sum(losses) / len(losses), "validation_perplexity": val_ppl})
        print(
            f"[{label}] epoch {epoch}: train loss {history[-1]['train_loss']:.3f}, validation perplexity "
            f"{val_ppl:.3f}",
            flush=True,
        )
    return history, time.perf_counter() - started


def train_variant(args: argparse.Namespace, variant: str, seed: int, data: dict[str, torch.Tensor]) -> dict:
    model = build_model(args, variant, seed)
    history, seconds = fit(model, args, data, seed, f"{variant}, seed {seed}")
    test_ppl = {}
    for context in args.eval_contexts:
        batch_size = max(1, args.batch_size * args.context // context)  # about as many bytes per batch as training
        test_ppl[str(context)] = perplexity(model, eval_windows(data["test"], context, args.eval_windows), batch_size)
    return {
        "variant": variant,
        "seed": seed,
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


# -- runs and reporting -----------------------------------------------------------------------------------------------

#: The files whose content decides what a run computes (part of every run's settings hash).
CODE_FILES = ("configuration_las.py", "modeling_las.py", "las_attention.py", "examples/run_lm.py")


def run_settings(args: argparse.Namespace, variant: str, seed: int, sizes: Mapping[str, int]) -> dict:
    """Everything that decides a run's result: the arguments that matter, the variant, the seed, the data's size and
    the code's version."""
    recorded = {key: str(value) for key, value in vars(args).items() if key not in UNRECORDED_ARGS}
    recorded["eval_contexts"] = list(args.eval_contexts)
    return {
        **recorded,
        "variant": variant,
        "seed": seed,
        "split_bytes": dict(sizes),
        "code_version": code_version(Path(__file__).resolve().parents[1], CODE_FILES),
    }


def run_file(output_dir: Path, settings: Mapping) -> Path:
    return output_dir / "runs" / f"{settings['variant']}__seed{settings['seed']}__{settings_hash(settings)}.json"


def read_runs(output_dir: Path) -> list[dict]:
    """Every valid run file of the folder (a file whose settings do not hash to its name is skipped, named)."""
    runs = []
    for path in sorted((output_dir / "runs").glob("*.json")):
        try:
            run = json.loads(path.read_text())
            valid = path.name.endswith(f"__{settings_hash(run['settings'])}.json")
        except (OSError, ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            print(f"run_lm.py: warning: {path} is not a valid run file; ignored (its run will be redone)")
            continue
        runs.append(run)
    return runs


def write_report(runs: list[dict], output_dir: Path) -> None:
    """results.csv, results.md (means, paired differences), samples.md and the figure, from every run file."""
    rows = [
        {
            "variant": run["variant"],
            "seed": run["seed"],
            "context": run["settings"]["context"],
            "eval_context": context,
            "test_perplexity": round(ppl, 4),
            "final_validation_perplexity": round(run["history"][-1]["validation_perplexity"], 4),
            "train_seconds": round(run["train_seconds"], 1),
            "design": settings_hash(run["settings"], leave_out=("variant", "seed")),
            "settings": settings_hash(run["settings"]),
        }
        for run in runs
        for context, ppl in run["test_perplexity"].items()
    ]
    rows.sort(key=lambda row: (row["design"], row["variant"], row["seed"], int(row["eval_context"])))
    temporary = output_dir / ".results.csv.tmp"
    with open(temporary, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(output_dir / "results.csv")

    # Runs are comparable when all their settings but the variant and the seed agree.
    designs: dict[str, dict[str, dict[int, dict]]] = {}
    for run in runs:
        key = settings_hash(run["settings"], leave_out=("variant", "seed"))
        designs.setdefault(key, {}).setdefault(run["variant"], {})[run["seed"]] = run
    lines = []
    for key, variants in designs.items():
        first = next(iter(next(iter(variants.values())).values()))["settings"]
        contexts = first["eval_contexts"]
        lines += [
            f"## Design {key}: context {first['context']}, batch {first['batch_size']}, {first['epochs']} x "
            f"{first['steps_per_epoch']} steps, {first['num_hidden_layers']} layers, width {first['hidden_size']}, "
            f"{first['num_attention_heads']} heads, B = {first['las_alpha_max']}, lr {first['learning_rate']}, "
            f"{first['eval_windows']} test windows per context; bytes per split {first['split_bytes']}",
            "",
            "Test perplexity, mean ± 95% interval over seeds (number of seeds):",
            "",
            "| variant | " + " | ".join(f"test ppl at {c}" for c in contexts) + " | seeds |",
            "|---|" + "---|" * (len(contexts) + 1),
        ]
        for variant in VARIANTS:
            if variant in variants:
                seeds = sorted(variants[variant])
                cells = [
                    format_interval(
                        *mean_interval([variants[variant][s]["test_perplexity"][str(c)] for s in seeds]), signed=False
                    )
                    for c in contexts
                ]
                lines.append(f"| {variant} | " + " | ".join(cells) + f" | {', '.join(map(str, seeds))} |")
        lines += [
            "",
            "Paired differences of test perplexity (variant minus baseline, same seed = same initial weights and "
            "batches; negative = better):",
            "",
            "| comparison | eval context | seeds | mean ± 95% interval | per seed | reading |",
            "|---|---|---|---|---|---|",
        ]
        for variant, baseline in COMPARISONS:
            if variant not in variants or baseline not in variants:
                continue
            seeds = sorted(set(variants[variant]) & set(variants[baseline]))
            for c in contexts:
                differences = [
                    variants[variant][s]["test_perplexity"][str(c)] - variants[baseline][s]["test_perplexity"][str(c)]
                    for s in seeds
                ]
                mean, half, count = mean_interval(differences)
                lines.append(
                    f"| {variant} - {baseline} | {c} | {count} | {format_interval(mean, half)} | "
                    f"{', '.join(f'{d:+.3f}' for d in differences)} | {verdict(mean, half)} |"
                )
        lines.append("")
    header = [
        "# Byte-level language models over seeds (examples/run_lm.py)",
        "",
        f"Written from all {len(runs)} run files in `runs/` (each with its settings). Corpus: "
        f"`{runs[0]['settings']['corpus_dir']}` ({runs[0]['settings']['pattern']}), split by file 80/10/10 with "
        f"split seed {runs[0]['settings']['split_seed']}. Variants: "
        + "; ".join(
            f"`{name}`: {', '.join(f'{k}={v}' for k, v in fields.items())}" for name, fields in VARIANTS.items()
        )
        + " (all with causal pooling and sinusoidal positions unless stated).",
        "",
    ]
    write_atomically(output_dir / "results.md", "\n".join(header + lines))
    lowest = min(run["seed"] for run in runs)
    samples = [f"Greedy continuations (`generate()`, one left-padded batch, KV cache), seed {lowest}.", ""]
    for run in runs:
        if run["seed"] == lowest:
            samples += [f"## {run['variant']}", ""]
            for prompt, text in zip(PROMPTS, run["samples"]):
                samples += ["```python", prompt + text, "```", ""]
    write_atomically(output_dir / "samples.md", "\n".join(samples))
    plot(runs, output_dir / "perplexity.png")
    print("\n".join(lines))


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, (curves, seeds) = plt.subplots(1, 2, figsize=(11, 4))
    lowest = min(run["seed"] for run in runs)
    names = [name for name in VARIANTS if any(run["variant"] == name for run in runs)]
    for index, name in enumerate(names):
        for run in runs:
            if run["variant"] != name:
                continue
            if run["seed"] == lowest:
                history = run["history"]
                curves.plot(
                    [h["epoch"] for h in history],
                    [h["validation_perplexity"] for h in history],
                    marker="o",
                    label=name,
                )
            context = run["settings"]["context"]
            seeds.scatter(index, run["test_perplexity"].get(str(context), math.nan), color=f"C{index}", s=14)
    curves.set(xlabel="epoch", ylabel="validation perplexity (bytes)", title=f"Validation perplexity, seed {lowest}")
    seeds.set_xticks(range(len(names)), names, fontsize=8)
    seeds.set(ylabel="test perplexity", title="Test perplexity at the training context, one dot per seed")
    for axis in (curves, seeds):
        axis.grid(alpha=0.3)
    curves.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    files = split_files(args.corpus_dir, args.pattern, args.split_seed)
    data = {name: read_bytes(paths, args.max_split_bytes) for name, paths in files.items()}
    too_short = [name for name, stream in data.items() if len(stream) < max(args.context, *args.eval_contexts) + 2]
    if too_short:
        raise SystemExit(f"--corpus_dir {args.corpus_dir}: split(s) {too_short} hold fewer than context + 2 bytes.")
    sizes = {name: len(stream) for name, stream in data.items()}
    (args.output_dir / "runs").mkdir(parents=True, exist_ok=True)
    try:
        with FolderLock(args.output_dir):
            finished = {run_file(args.output_dir, run["settings"]) for run in read_runs(args.output_dir)}
            for seed in args.seeds:  # seed by seed: every finished seed is a complete set of pairs
                for variant in args.variants.split(","):
                    settings = run_settings(args, variant, seed, sizes)
                    path = run_file(args.output_dir, settings)
                    if path in finished:
                        print(f"[{variant}, seed {seed}] done before: {path.name}", flush=True)
                        continue
                    result = train_variant(args, variant, seed, data)
                    write_atomically(path, json.dumps({**result, "settings": settings}, indent=1))
            runs = read_runs(args.output_dir)
            write_report(runs, args.output_dir)
    except FolderBusyError as error:
        raise SystemExit(f"run_lm.py: error: {error}") from None
    return runs


if __name__ == "__main__":
    main()
