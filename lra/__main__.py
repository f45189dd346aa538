"""Command line of the `lra` package.

::

    python -m lra generate listops --out DATA/lra_release/listops-1000
    python -m lra generate pathfinder --out DATA/lra_release --num 200000 --resolution 128 --workers 16
    python -m lra export listops --data-dir DATA/lra_release --out EXPORT [--push-to-hub user/lra]
    python -m lra export pathfinder --data-dir DATA/lra_release --out EXPORT --resolution 64 --difficulty 9

Exit status: 0 on success, 2 for bad arguments (one line on stderr, no traceback), 1 when the data
is missing or malformed (the message says which files are expected or which line is wrong) or an
output folder cannot be written (the message names it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import TASKS
from .tasks import MNIST_LABELS


class _ArgumentParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are a single line, pointing at `--help`."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _DataError(Exception):
    """The data given to a command is missing or malformed (exit status 1)."""


def _run_generate_listops(args: argparse.Namespace) -> None:
    from .listops import run_generate_listops

    run_generate_listops(args)


def _run_generate_pathfinder(args: argparse.Namespace) -> None:
    from .pathfinder import run_generate_pathfinder

    run_generate_pathfinder(args)


def _run_export(args: argparse.Namespace) -> None:
    from .builders import LRADataError
    from .export import export_lra

    options = {
        name: value
        for name, value in (
            ("resolution", args.resolution),
            ("difficulty", args.difficulty),
            ("labels", args.labels),
        )
        if value is not None
    }
    try:
        out_dir = export_lra(
            args.task,
            args.data_dir,
            args.out,
            cache_dir=args.cache_dir,
            push_to_hub=args.push_to_hub,
            overwrite=args.overwrite,
            **options,
        )
    except LRADataError as error:
        raise _DataError(str(error)) from None
    print(out_dir / "README.md")


def build_parser() -> argparse.ArgumentParser:
    """The `python -m lra` parser; each command stores its handler as `args.run`."""
    from .listops import add_generate_listops_arguments
    from .pathfinder import add_generate_pathfinder_arguments

    parser = _ArgumentParser(prog="python -m lra", description="Long Range Arena data: generate and export.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{generate,export}")

    generate = commands.add_parser("generate", help="generate a synthetic task in the release's layout")
    tasks = generate.add_subparsers(dest="task", required=True, metavar="{listops,pathfinder}")
    listops = tasks.add_parser("listops", help="ListOps: basic_{train,val,test}.tsv")
    add_generate_listops_arguments(listops)
    listops.set_defaults(run=_run_generate_listops)
    pathfinder = tasks.add_parser("pathfinder", help="Pathfinder / Path-X: pathfinder{R}/curv_*/{imgs,metadata}")
    add_generate_pathfinder_arguments(pathfinder)
    pathfinder.set_defaults(run=_run_generate_pathfinder)

    export = commands.add_parser("export", help="write a task as Parquet with a dataset card (and push it)")
    export.add_argument("task", choices=TASKS, help="the LRA task")
    export.add_argument(
        "--data-dir",
        required=True,
        type=Path,
        help="local copy of the data: archive root (lra_release/), lra_release/lra_release or the "
        "task folder; for text/image the folder with aclImdb/CIFAR-10",
    )
    export.add_argument(
        "--out",
        required=True,
        type=Path,
        help="export folder: OUT/<config>/*.parquet and OUT/README.md (other tasks there are kept)",
    )
    export.add_argument("--push-to-hub", metavar="REPO", help="also push to this Hub dataset repository")
    export.add_argument(
        "--cache-dir", type=Path, help="datasets cache for the preparation (default HF_DATASETS_CACHE)"
    )
    export.add_argument("--resolution", type=int, help="pathfinder only: 32, 64, 128 or 256 (default 32)")
    export.add_argument("--difficulty", type=int, help="pathfinder only: contour length 6, 9 or 14 (default 14)")
    export.add_argument(
        "--labels",
        choices=tuple(MNIST_LABELS),
        help="smnist / pmnist only: the class names, digits (MNIST, the default) or fashion (Fashion-MNIST)",
    )
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an OUT/README.md that was not written by this exporter (refused otherwise)",
    )
    export.set_defaults(run=_run_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except _DataError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # an output folder that cannot be created or written: a file, no permission, disk full
        where = f": {error.filename}" if error.filename else ""
        print(f"{parser.prog}: error: cannot write the output ({error.strerror or error}{where})", file=sys.stderr)
        return 1
    except ValueError as error:  # an argument value the command rejected
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
