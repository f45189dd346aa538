#!/usr/bin/env python
"""Time and peak memory of building the flex `BlockMask` of one model call: ours against `create_block_mask`.

`LaSModel` builds one BlockMask per forward (causal and/or padding) and passes it to every layer.
`las_flex_block_mask` derives the tile tables from per-block counts of kept keys, O(batch x L); torch's
`create_block_mask` evaluates the mask on every (query, key) position, O(batch x L^2). Both give the same BlockMask bit
for bit (tests/test_las_attention.py::test_flex_block_mask_equals_create_block_mask).

    python examples/benchmarks/block_mask.py --device cpu --threads 1
    python examples/benchmarks/block_mask.py --device cuda --lengths 4096 16384 65536
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import fmt_length, fmt_mib, fmt_ms, fmt_ratio, markdown_table  # noqa: E402

from las_attention import las_flex_block_mask  # noqa: E402

COLUMNS = ("mask", "length", "batch", "method", "status", "build_ms", "build_ms_min", "build_ms_max", "peak_mem_mib")


def create_block_mask_reference(attention_mask: torch.Tensor | None, batch: int, length: int, device: torch.device):
    """torch's way: evaluate the causal + padding mask at every position (what las_flex_block_mask used to call)."""
    from torch.nn.attention.flex_attention import create_block_mask

    keep = attention_mask.bool() if attention_mask is not None else None

    def mask_mod(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & keep[b, kv_idx] if keep is not None else kv_idx <= q_idx

    return create_block_mask(mask_mod, batch if keep is not None else None, None, length, length, device=device)


def padded_attention_mask(batch: int, length: int, device: torch.device) -> torch.Tensor:
    """Right padding with real lengths spread over [L/2, L], as in a batch of LRA sequences."""
    real = torch.linspace(length // 2, length, batch).long()
    return (torch.arange(length)[None, :] < real[:, None]).long().to(device)


def time_cell(row: dict) -> str:
    return fmt_ms(row["build_ms"] / 1e3) if row.get("build_ms") is not None else row["status"]


def memory_cell(row: dict) -> str:
    return fmt_mib(row["peak_mem_mib"] * common.MIB) if row.get("peak_mem_mib") is not None else "—"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser, default_repeats=5, default_warmup=1)
    parser.add_argument("--lengths", type=int, nargs="+", default=None, help="default: 1K..8K")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    device = common.apply_common_arguments(args)
    lengths = args.lengths or ([128, 256] if args.smoke else [1024, 2048, 4096, 8192])
    repeats, warmup = (2, 0) if args.smoke else (args.repeats, args.warmup)

    rows = []
    for mask_kind in ("causal", "causal + padding"):
        for length in lengths:
            attention_mask = padded_attention_mask(args.batch, length, device) if mask_kind != "causal" else None
            # partial binds this iteration's mask and length (a lambda would read the loop variables late).
            candidates = {
                "las_flex_block_mask": functools.partial(
                    las_flex_block_mask, attention_mask, args.batch, length, True, None, device
                ),
                "create_block_mask": functools.partial(
                    create_block_mask_reference, attention_mask, args.batch, length, device
                ),
            }
            samples, errors = common.time_interleaved(candidates, device, warmup, repeats)
            for method, fn in candidates.items():
                row = {"mask": mask_kind, "length": length, "batch": args.batch, "method": method}
                if method in errors:
                    row["status"] = errors[method]
                else:
                    row.update(common.measured_columns(fn, samples[method], device, "build"))
                rows.append(row)
            print(
                f"{mask_kind:>16} L={fmt_length(length):>4}: "
                + ", ".join(f"{row['method']} {time_cell(row)} ms" for row in rows[-2:])
            )

    table_rows = []
    for ours, torchs in zip(rows[0::2], rows[1::2]):  # rows come in (ours, create_block_mask) pairs
        both_timed = ours.get("build_ms") and torchs.get("build_ms")
        speedup = torchs["build_ms"] / ours["build_ms"] if both_timed else None
        table_rows.append(
            [
                ours["mask"],
                fmt_length(ours["length"]),
                time_cell(ours),
                time_cell(torchs),
                fmt_ratio(speedup),
                memory_cell(ours),
                memory_cell(torchs),
            ]
        )
    header = ["mask", "L", "ours ms", "create_block_mask ms", "speed-up", "ours MiB", "create_block_mask MiB"]
    markdown = "\n".join(
        [
            f"# Building the flex BlockMask of one model call, {device.type} ({args.tag})",
            "",
            f"- machine: {common.machine_line(device)}",
            f"- command: `{common.command_line()}`",
            f"- batch {args.batch}; padding: real lengths spread evenly over [L/2, L]; median of {repeats} builds "
            f"after {warmup} warm-up(s), methods interleaved; peak memory: bytes torch allocated during one build",
            "",
            markdown_table(header, table_rows),
            "",
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    common.write_csv(args.out / f"block_mask_{args.tag}.csv", rows, COLUMNS)
    common.write_text(args.out / f"block_mask_{args.tag}.md", markdown)
    print()
    print(markdown)


if __name__ == "__main__":
    main()
