"""Seeded generator for the synthetic ListOps task of the Long Range Arena.

The algorithm follows the official LRA ListOps generator
(google-research/long-range-arena): random expression trees over the operators
MIN, MAX, MED (median, truncated to an int) and SM (sum modulo 10) with digit
leaves, filtered by length, de-duplicated and written as
`basic_{train,val,test}.tsv` with a `Source\\tTarget` header.

Unlike the official script this one takes a seed, so a data set can be rebuilt
byte for byte, and it writes the three files as one set (a directory rename), so an
interrupted or concurrent run never leaves a half-written split, or two seeds' files, behind.

String form of a node with `n` children `c0 .. c(n-1)`:

    ( * (n + 1)   [OP c0 )   c1 )   ...   c(n-1) )   ] )

e.g. `( ( ( [MAX 2 ) 9 ) ] )`. `[MAX` is a single token and `]` closes
the operator. The length of an expression counts its tokens without the
parentheses: 1 for a digit, 2 + the children's lengths for an operator node.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

from tqdm.auto import tqdm

from .faults import kill_point
from .validation import check_int

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = [
    "OPERATORS",
    "SPLITS",
    "ListOpsTree",
    "sample_listops_tree",
    "listops_tree_tokens",
    "listops_tree_value",
    "listops_value",
    "generate_listops",
    "validate_listops_arguments",
    "add_generate_listops_arguments",
    "run_generate_listops",
]

logger = logging.getLogger(__name__)

OPERATORS: tuple[str, ...] = ("MIN", "MAX", "MED", "SM")
SPLITS: tuple[str, ...] = ("train", "val", "test")
HEADER = "Source\tTarget\n"
# Staging folders inside the task folder, as runs before the folder swap made them (a killed one may have left one).
_STAGING_PREFIX = ".listops-tmp-"

# Defaults of the generator: the sizes and length window of the LRA release (``listops-1000``). The command line
# (``python -m lra generate listops``) and ``examples/run_lra.py`` take their defaults from here.
DEFAULT_NUM_TRAIN = 96_000
DEFAULT_NUM_VAL = 2_000
DEFAULT_NUM_TEST = 2_000
DEFAULT_MIN_LENGTH = 500
DEFAULT_MAX_LENGTH = 2_000
DEFAULT_MAX_DEPTH = 10
DEFAULT_MAX_ARGS = 10
DEFAULT_SEED = 0

# Probability that a node (above the depth limit) becomes an operator node.
OPERATOR_PROBABILITY = 0.25
CLOSE_TOKEN = "]"
_OPERATOR_TOKENS = {"[" + name: name for name in OPERATORS}
_DIGITS = frozenset("0123456789")

# A run that finds no new sample in this many consecutive draws is stuck (the
# length window is empty in practice, or more unique expressions were requested
# than exist); with the default bounds about 8% of draws are accepted, so a
# healthy run never comes close.
MAX_CONSECUTIVE_REJECTIONS = 1_000_000

# A leaf is a digit; an operator node is (operator name, children).
ListOpsTree = Union[int, tuple[str, tuple["ListOpsTree", ...]]]


class _TooLong(Exception):
    """Raised inside the sampler to abandon a tree that already exceeds the length cap."""


# ---------------------------------------------------------------------------
# Trees
# ---------------------------------------------------------------------------


def sample_listops_tree(
    rng: random.Random,
    max_depth: int = 10,
    max_args: int = 10,
    length_cap: int | None = None,
) -> tuple[ListOpsTree | None, int]:
    """Draw one random expression tree; return `(tree, length)`.

    A node at `depth` (the root is at depth 1) becomes an operator node when
    `depth < max_depth` and a uniform draw is `<= 0.25`; it then gets a
    uniformly drawn operator and `randint(2, max_args)` children at
    `depth + 1`. Otherwise it is a uniform digit.

    If `length_cap` is given, sampling stops as soon as the length reaches
    it and `(None, length_so_far)` is returned. Such a tree would be rejected
    by the length filter anyway, so stopping early changes nothing about the
    accepted samples and spares building the occasional huge tree.
    """
    length = 0
    # Bound methods and plain random() scaling instead of randrange()/choice():
    # the same uniform draws at a fraction of the per-call cost (this loop runs
    # ~10^4 times per second of generation).
    uniform = rng.random
    num_operators = len(OPERATORS)
    extra_args = max_args - 1  # randint(2, max_args) == 2 + floor(u * (max_args - 1))

    def node(depth: int) -> ListOpsTree:
        nonlocal length
        if depth < max_depth and uniform() <= OPERATOR_PROBABILITY:
            length += 2
            if length_cap is not None and length >= length_cap:
                raise _TooLong
            operator = OPERATORS[int(uniform() * num_operators)]
            num_children = 2 + int(uniform() * extra_args)
            return operator, tuple([node(depth + 1) for _ in range(num_children)])
        length += 1
        if length_cap is not None and length >= length_cap:
            raise _TooLong
        return int(uniform() * 10)

    try:
        tree = node(1)
    except _TooLong:
        return None, length
    return tree, length


def listops_tree_tokens(tree: ListOpsTree) -> list[str]:
    """Write a tree as the official token list (parentheses included)."""
    tokens: list[str] = []

    def write(subtree: ListOpsTree) -> None:
        if isinstance(subtree, int):
            tokens.append(str(subtree))
            return
        operator, children = subtree
        tokens.extend(["("] * (len(children) + 1))
        tokens.append("[" + operator)
        for child in children:
            # Leaves are most of the nodes: write them inline rather than recursing.
            if isinstance(child, int):
                tokens.append(str(child))
            else:
                write(child)
            tokens.append(")")
        tokens.append(CLOSE_TOKEN)
        tokens.append(")")

    write(tree)
    return tokens


def _apply_operator(operator: str, values: list[int]) -> int:
    if operator == "MIN":
        return min(values)
    if operator == "MAX":
        return max(values)
    if operator == "SM":
        return sum(values) % 10
    if operator == "MED":
        # np.median semantics (mean of the two middle values for an even count)
        # truncated with int(); values are non-negative, so // truncates alike.
        ordered = sorted(values)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) // 2
    raise ValueError(f"unknown ListOps operator {operator!r}; expected one of {', '.join(OPERATORS)}")


def listops_tree_value(tree: ListOpsTree) -> int:
    """Evaluate a tree (the sample's label)."""
    if isinstance(tree, int):
        return tree
    operator, children = tree
    values = [child if isinstance(child, int) else listops_tree_value(child) for child in children]
    return _apply_operator(operator, values)


def listops_value(source: str) -> int:
    """Evaluate an expression in the official string form, e.g. `( ( ( [MAX 2 ) 9 ) ] )`.

    Parentheses must balance but are otherwise ignored, as the LRA tokenizer
    ignores them; `[OP` opens an operator and `]` closes it.

    Raises:
        ValueError: naming the problem (unknown token, unbalanced parenthesis,
            unclosed operator, operator without arguments, several top-level
            values, empty expression).
    """
    tokens = source.split()
    if not tokens:
        raise ValueError("empty ListOps expression")
    open_operators: list[tuple[str, list[int]]] = []
    result: int | None = None
    paren_depth = 0

    def push(value: int, position: int) -> None:
        nonlocal result
        if open_operators:
            open_operators[-1][1].append(value)
        elif result is None:
            result = value
        else:
            raise ValueError(f"more than one top-level value (second one ends at token {position})")

    for position, token in enumerate(tokens):
        if token == "(":
            paren_depth += 1
        elif token == ")":
            paren_depth -= 1
            if paren_depth < 0:
                raise ValueError(f"unbalanced ')' at token {position}")
        elif token in _OPERATOR_TOKENS:
            if result is not None and not open_operators:
                raise ValueError(f"operator {token!r} at token {position} follows a complete expression")
            open_operators.append((_OPERATOR_TOKENS[token], []))
        elif token == CLOSE_TOKEN:
            if not open_operators:
                raise ValueError(f"']' at token {position} closes no operator")
            operator, values = open_operators.pop()
            if not values:
                raise ValueError(f"operator {operator} closed at token {position} has no arguments")
            push(_apply_operator(operator, values), position)
        elif len(token) == 1 and token in _DIGITS:
            push(int(token), position)
        else:
            raise ValueError(f"unknown ListOps token {token!r} at token {position}")

    if open_operators:
        raise ValueError(f"operator {open_operators[-1][0]} is never closed with ']'")
    if paren_depth != 0:
        raise ValueError(f"unbalanced parentheses: {paren_depth} '(' never closed")
    if result is None:
        raise ValueError("ListOps expression has no value (only parentheses)")
    return result


# ---------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------


def _max_tree_length(max_depth: int, max_args: int) -> int:
    """Length of the largest possible tree: every node above the depth limit full."""
    length = 1
    for _ in range(max_depth - 1):
        length = 2 + max_args * length
    return length


def validate_listops_arguments(
    num_train: int,
    num_val: int,
    num_test: int,
    seed: int,
    min_length: int,
    max_length: int,
    max_depth: int,
    max_args: int,
) -> None:
    """Check the arguments of `generate_listops`: ValueError naming the first bad one."""
    for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        check_int(name, value, why=" (an empty split cannot be trained on or scored)")
    for name, value in (("seed", seed), ("min_length", min_length), ("max_length", max_length)):
        check_int(name, value, least=0)
    check_int("max_depth", max_depth)
    check_int("max_args", max_args, least=2)
    if min_length >= max_length:
        raise ValueError(f"min_length ({min_length}) must be smaller than max_length ({max_length})")
    if max_length - min_length < 2:
        raise ValueError(
            f"no length lies strictly between min_length ({min_length}) and max_length ({max_length}); "
            "lengths are kept when min_length < length < max_length"
        )
    longest = _max_tree_length(max_depth, max_args)
    if min_length + 1 > longest:
        raise ValueError(
            f"min_length ({min_length}) is unreachable: with max_depth={max_depth} and "
            f"max_args={max_args} no expression is longer than {longest} tokens"
        )


def _sample_rows(
    rng: random.Random,
    min_length: int,
    max_length: int,
    max_depth: int,
    max_args: int,
) -> Iterator[str]:
    """Yield an endless stream of unique `"source\\tlabel\\n"` rows passing the length filter."""
    # Digests instead of the sources themselves: 100k sources of ~1,000 tokens
    # would hold hundreds of MB; a stable hash (unlike hash()) keeps runs reproducible.
    seen: set[bytes] = set()
    rejections = 0
    while True:
        tree, length = sample_listops_tree(rng, max_depth, max_args, length_cap=max_length)
        if tree is None or length <= min_length:
            rejections += 1
        else:
            source = " ".join(listops_tree_tokens(tree))
            digest = hashlib.blake2b(source.encode("ascii"), digest_size=16).digest()
            if digest in seen:
                rejections += 1
            else:
                seen.add(digest)
                rejections = 0
                yield f"{source}\t{listops_tree_value(tree)}\n"
        if rejections >= MAX_CONSECUTIVE_REJECTIONS:
            raise RuntimeError(
                f"no new ListOps expression in {MAX_CONSECUTIVE_REJECTIONS:,} draws: the bounds "
                f"min_length={min_length}, max_length={max_length}, max_depth={max_depth}, "
                f"max_args={max_args} admit too few unique expressions for the requested counts"
            )


def generate_listops(
    out_dir: str | os.PathLike[str],
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    num_test: int = DEFAULT_NUM_TEST,
    seed: int = DEFAULT_SEED,
    min_length: int = DEFAULT_MIN_LENGTH,
    max_length: int = DEFAULT_MAX_LENGTH,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_args: int = DEFAULT_MAX_ARGS,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Generate ListOps and write `basic_{train,val,test}.tsv` into `out_dir`.

    `out_dir` is the task folder (the official `listops-1000`). Samples
    are unique across all splits and satisfy `min_length < length <
    max_length`; train is filled first, then val, then test. The same
    arguments give byte-identical files.

    The three files are one set, and `out_dir` never holds parts of two: they are written into a staging folder
    next to `out_dir` (`.<name>.listops-tmp-*`) and moved into place as one directory rename once every
    split is complete, so an interrupted run leaves earlier files untouched and no partial split behind. Replacing
    a set (`overwrite=True`) moves the old folder aside first (`.<name>.listops-old-*`); a run killed between
    the two renames leaves no `out_dir` at all (the loader says so), and the next run puts the old set back
    before it does anything else. (A folder that also holds other files cannot be swapped whole: its old files are
    deleted before the new ones are moved in, one by one, so it too holds one set or an incomplete one, which
    the loader refuses.) Existing `basic_*.tsv` files are replaced only with `overwrite=True`.

    Runs into the same folder are serialised (a lock on the parent folder): a second run waits for the first,
    then finds its files (and refuses them without `overwrite`); leftovers are only removed by the run that
    holds the lock, so no run deletes another's staging folder.

    Returns:
        `{"train": path, "val": path, "test": path}`.

    Raises:
        ValueError: on invalid counts (each split needs at least one sample),
            seed or length/depth bounds, or existing files without `overwrite`.
    """
    validate_listops_arguments(num_train, num_val, num_test, seed, min_length, max_length, max_depth, max_args)
    out_dir = Path(out_dir)
    final_paths = {split: out_dir / f"basic_{split}.tsv" for split in SPLITS}
    _refuse_existing(out_dir, overwrite)  # before any work; again under the lock, where it counts
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = dict(zip(SPLITS, (num_train, num_val, num_test)))

    with _folder_lock(out_dir.parent):
        _recover_interrupted_runs(out_dir)
        _refuse_existing(out_dir, overwrite)  # another run may have written the files while this one waited
        rng = random.Random(seed)
        rows = _sample_rows(rng, min_length, max_length, max_depth, max_args)
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(out_dir, "tmp"), dir=out_dir.parent))
        try:
            with tqdm(total=sum(counts.values()), desc="ListOps", unit="sample", disable=not progress) as bar:
                for split in SPLITS:
                    # newline="" keeps "\n" line ends on every platform: same bytes everywhere.
                    with open(staging / final_paths[split].name, "w", encoding="ascii", newline="") as handle:
                        handle.write(HEADER)
                        for _ in range(counts[split]):
                            handle.write(next(rows))
                            bar.update(1)
            _move_into_place(staging, out_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already after a swap
    return final_paths


def _staging_prefix(out_dir: Path, kind: str) -> str:
    """Name prefix of the folders a run keeps next to `out_dir`: `tmp` (staging) or `old` (set aside)."""
    return f".{out_dir.name}.listops-{kind}-"


def _our_files(out_dir: Path) -> tuple[list[str], list[str]]:
    """The names in `out_dir`: (`basic_*.tsv` files of a set, other entries), leftovers of old versions aside."""
    names = sorted(path.name for path in out_dir.iterdir()) if out_dir.is_dir() else []
    names = [name for name in names if not name.startswith(_STAGING_PREFIX)]
    ours = {f"basic_{split}.tsv" for split in SPLITS}
    return [name for name in names if name in ours], [name for name in names if name not in ours]


def _refuse_existing(out_dir: Path, overwrite: bool) -> None:
    existing, _ = _our_files(out_dir)
    if existing and not overwrite:
        # The folder may hold the official release, or a data set a model was trained on: never replace it silently.
        raise ValueError(
            f"{out_dir} already holds {', '.join(sorted(existing, key=_split_order))}; pass --overwrite "
            "(overwrite=True) to replace them, or choose another output folder"
        )


def _split_order(name: str) -> int:
    return [f"basic_{split}.tsv" for split in SPLITS].index(name)


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (the parent of the task folder) while a run writes next to it.

    A lock on the directory itself leaves no file behind; the system releases it when the process dies, however
    it dies. Where `fcntl` does not exist (Windows), runs are not serialised.
    """
    if fcntl is None:
        yield
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning("Another ListOps generation is writing into %s; waiting for it to finish", folder)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _recover_interrupted_runs(out_dir: Path) -> None:
    """Undo what killed runs left (called under the lock, so no other run is using these folders).

    A set aside by a swap that never finished goes back where it was when `out_dir` is missing or empty;
    staging folders, and sets aside whose swap did finish, are deleted.
    """
    for aside in sorted(out_dir.parent.glob(f"{_staging_prefix(out_dir, 'old')}*")):
        if not any(out_dir.iterdir()):
            os.replace(aside, out_dir)  # replaces the empty folder
            logger.warning("Restored the ListOps files of %s that an interrupted --overwrite had set aside", out_dir)
        else:
            shutil.rmtree(aside, ignore_errors=True)
    leftovers = [*out_dir.parent.glob(f"{_staging_prefix(out_dir, 'tmp')}*"), *out_dir.glob(f"{_STAGING_PREFIX}*")]
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)


def _move_files_into_place(staging: Path, out_dir: Path, existing: list[str]) -> None:
    """Where the folder cannot be swapped whole: the old set is deleted first, so it never mixes with the new one."""
    for name in existing:
        (out_dir / name).unlink()
    for path in sorted(staging.iterdir(), key=lambda path: _split_order(path.name)):
        os.replace(path, out_dir / path.name)


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Replace the set of files in `out_dir` by the one in `staging` (see `generate_listops`)."""
    existing, others = _our_files(out_dir)
    for leftover in out_dir.glob(f"{_STAGING_PREFIX}*"):  # an old version's staging folder
        shutil.rmtree(leftover, ignore_errors=True)
    if others or out_dir.is_symlink():  # not ours to move as a whole (a link would be replaced by a folder)
        _move_files_into_place(staging, out_dir, existing)
        return
    if not existing:
        os.replace(staging, out_dir)  # onto the empty folder: one atomic rename
        return
    aside = Path(tempfile.mkdtemp(prefix=_staging_prefix(out_dir, "old"), dir=out_dir.parent))
    try:
        os.replace(out_dir, aside)
    except OSError:  # a mount point, or a folder this user may not rename
        aside.rmdir()
        _move_files_into_place(staging, out_dir, existing)
        return
    try:
        kill_point("listops-swap")
        os.replace(staging, out_dir)
    except BaseException:
        if not out_dir.exists():
            os.replace(aside, out_dir)  # an exception, unlike a kill, can put the old set back at once
        raise
    shutil.rmtree(aside)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_generate_listops_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `generate listops` options to `parser`."""
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="task folder to write basic_{train,val,test}.tsv into (e.g. DATA/listops-1000)",
    )
    # "%(default)s": argparse writes the default into the help, so the numbers stand only in the DEFAULT_* constants.
    options = (
        ("--num-train", DEFAULT_NUM_TRAIN, "training samples"),
        ("--num-val", DEFAULT_NUM_VAL, "validation samples"),
        ("--num-test", DEFAULT_NUM_TEST, "test samples"),
        ("--seed", DEFAULT_SEED, "random seed"),
        ("--min-length", DEFAULT_MIN_LENGTH, "keep expressions longer than this many tokens, parentheses excluded"),
        ("--max-length", DEFAULT_MAX_LENGTH, "keep expressions shorter than this many tokens"),
        ("--max-depth", DEFAULT_MAX_DEPTH, "maximum tree depth"),
        ("--max-args", DEFAULT_MAX_ARGS, "maximum operator arity"),
    )
    for flag, default, text in options:
        parser.add_argument(flag, type=int, default=default, help=f"{text} (default %(default)s)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace basic_*.tsv files already in --out (refused otherwise)"
    )


def run_generate_listops(args: argparse.Namespace) -> None:
    """Run `generate_listops` from parsed command-line arguments and print the paths."""
    paths = generate_listops(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        seed=args.seed,
        min_length=args.min_length,
        max_length=args.max_length,
        max_depth=getattr(args, "max_depth", DEFAULT_MAX_DEPTH),
        max_args=getattr(args, "max_args", DEFAULT_MAX_ARGS),
        progress=getattr(args, "progress", True),
        overwrite=getattr(args, "overwrite", False),
    )
    for split, path in paths.items():
        print(f"{split}: {path}")
