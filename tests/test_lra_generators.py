"""Tests for the synthetic LRA generators: ListOps (lra.listops) and Pathfinder (lra.pathfinder).

The checks use values, not only shapes: ListOps labels and lengths are
recomputed by an evaluator written here independently of the module, and
Pathfinder labels are checked by flood fills over the generator's own stroke
layers and over the written image.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lra.listops as listops
import lra.pathfinder as pathfinder
from lra.listops import HEADER, generate_listops, listops_value
from lra.pathfinder import (
    PathfinderParams,
    draw_indexed_pathfinder_sample,
    draw_pathfinder_sample,
    generate_pathfinder,
    pathfinder_params,
)
from tests.utils import listops_generate_flags

SPLITS = ("train", "val", "test")

# ---------------------------------------------------------------------------
# ListOps: an independent parser / evaluator for the official string form
# ---------------------------------------------------------------------------

_REFERENCE_OPERATORS = {
    "MIN": min,
    "MAX": max,
    "SM": lambda values: sum(values) % 10,
    "MED": lambda values: int(statistics.median(values)),
}


def _parse_official(tokens: list[str], pos: int = 0) -> tuple[int, int, int]:
    """Parse one node written as `( * (n+1) [OP c0 ) c1 ) ... ] )`; return (value, length, next pos).

    Checks the parenthesis layout exactly; the length excludes parentheses.
    """
    opens = 0
    while tokens[pos] == "(":
        opens += 1
        pos += 1
    head = tokens[pos]
    pos += 1
    if opens == 0:
        assert re.fullmatch(r"[0-9]", head), f"expected a digit, got {head!r}"
        return int(head), 1, pos
    assert head[0] == "[" and head[1:] in _REFERENCE_OPERATORS, f"expected an operator, got {head!r}"
    values, length = [], 2
    while tokens[pos] != "]":
        value, child_length, pos = _parse_official(tokens, pos)
        assert tokens[pos] == ")", f"child not followed by ')' at {pos}"
        pos += 1
        values.append(value)
        length += child_length
    assert tokens[pos + 1] == ")", "']' not followed by ')'"
    assert opens == len(values) + 1, f"{opens} '(' for {len(values)} children"
    return _REFERENCE_OPERATORS[head[1:]](values), length, pos + 2


def _reference_value_and_length(source: str) -> tuple[int, int]:
    tokens = source.split(" ")
    value, length, end = _parse_official(tokens)
    assert end == len(tokens), "trailing tokens"
    return value, length


def _read_split(path: Path) -> list[tuple[str, str]]:
    lines = path.read_text(encoding="ascii").split("\n")
    assert lines[0] == "Source\tTarget"
    assert lines[-1] == "", "file must end with a newline"
    rows = []
    for line in lines[1:-1]:
        fields = line.split("\t")
        assert len(fields) == 2, f"row must have exactly two tab-separated fields: {line[:60]!r}"
        rows.append((fields[0], fields[1]))
    return rows


_CUSTOM = dict(num_train=120, num_val=20, num_test=20, seed=3, min_length=10, max_length=60, max_depth=6, max_args=5)


@pytest.fixture(scope="module")
def listops_default(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("listops_default") / "listops-1000"
    return generate_listops(out, num_train=30, num_val=5, num_test=5, seed=0, progress=False)


@pytest.fixture(scope="module")
def listops_custom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_listops(tmp_path_factory.mktemp("listops_custom"), progress=False, **_CUSTOM)


@pytest.mark.parametrize(
    "which, counts, bounds",
    [("listops_default", (30, 5, 5), (500, 2000)), ("listops_custom", (120, 20, 20), (10, 60))],
)
def test_listops_layout_labels_and_lengths(request, which, counts, bounds) -> None:
    paths = request.getfixturevalue(which)
    assert set(paths) == set(SPLITS)
    for split, count in zip(SPLITS, counts):
        assert paths[split].name == f"basic_{split}.tsv"
        rows = _read_split(paths[split])
        assert len(rows) == count
        for source, target in rows:
            assert re.fullmatch(r"[0-9]", target)
            value, length = _reference_value_and_length(source)
            assert int(target) == value
            assert bounds[0] < length < bounds[1]
            assert length == sum(token not in "()" for token in source.split())
    # Only the three splits are left behind, no temporary files.
    assert sorted(p.name for p in paths["train"].parent.iterdir()) == sorted(f"basic_{s}.tsv" for s in SPLITS)


def test_listops_unique_across_splits(listops_custom) -> None:
    sources = [source for split in SPLITS for source, _ in _read_split(listops_custom[split])]
    assert len(sources) == len(set(sources)) == 160


def test_listops_deduplicates_when_repeats_are_common(tmp_path: Path) -> None:
    # Depth 2, two arguments, length < 5: only 10 digits + 4 * 10 * 10 expressions
    # exist, so 300 draws repeat a lot and de-duplication must do the work.
    paths = generate_listops(
        tmp_path,
        num_train=200,
        num_val=50,
        num_test=50,
        min_length=0,
        max_length=5,
        max_depth=2,
        max_args=2,
        progress=False,
    )
    rows = [row for split in SPLITS for row in _read_split(paths[split])]
    assert len(rows) == len({source for source, _ in rows}) == 300
    for source, target in rows:
        assert int(target) == _reference_value_and_length(source)[0]


def test_listops_exhausted_expression_space_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listops, "MAX_CONSECUTIVE_REJECTIONS", 2_000)
    with pytest.raises(RuntimeError, match="too few unique expressions"):  # only 10 single digits exist
        generate_listops(
            tmp_path, num_train=9, num_val=1, num_test=1, min_length=0, max_length=2, max_depth=1, progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_listops_labels_vary(listops_custom) -> None:
    # A degenerate generator (e.g. always one operator) would give few classes.
    labels = {target for split in SPLITS for _, target in _read_split(listops_custom[split])}
    assert len(labels) >= 8


def test_listops_same_seed_same_bytes_other_seed_differs(listops_custom, tmp_path: Path) -> None:
    again = generate_listops(tmp_path / "again", progress=False, **_CUSTOM)
    other = generate_listops(tmp_path / "other", progress=False, **{**_CUSTOM, "seed": 4})
    for split in SPLITS:
        assert again[split].read_bytes() == listops_custom[split].read_bytes()
        assert other[split].read_bytes() != listops_custom[split].read_bytes()


def test_listops_value_matches_reference(listops_custom) -> None:
    for source, target in _read_split(listops_custom["train"]):
        assert listops_value(source) == int(target)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("( ( ( [MAX 2 ) 9 ) ] )", 9),
        ("( ( ( [MIN 2 ) 9 ) ] )", 2),
        ("( ( ( [SM 7 ) 8 ) ] )", 5),
        ("( ( ( [MED 1 ) 4 ) ] )", 2),  # median 2.5 truncated
        ("( ( ( ( [MED 1 ) 7 ) 3 ) ] )", 3),
        ("( ( ( [SM ( ( ( [MAX 2 ) 9 ) ] ) ) 4 ) ] )", 3),
        ("7", 7),
    ],
)
def test_listops_value_examples(source: str, expected: int) -> None:
    assert listops_value(source) == expected


@pytest.mark.parametrize(
    "source, message",
    [
        ("", "empty"),
        ("( ( ( [MAX 2 ) 9 ) )", "never closed"),
        ("( ( [MAX ) ] )", "no arguments"),
        ("( ( ( [FOO 2 ) 9 ) ] )", "unknown ListOps token"),
        ("( ( ( [MAX 2 ) 9 ) ] ) )", r"unbalanced '\)'"),
        ("( ( ( ( [MAX 2 ) 9 ) ] )", "unbalanced parentheses"),
        ("2 3", "more than one top-level value"),
        ("] 2", "closes no operator"),
        ("( ( ( [MAX 12 ) 9 ) ] )", "unknown ListOps token '12'"),
    ],
)
def test_listops_value_rejects_malformed(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        listops_value(source)


def test_listops_interrupted_run_leaves_no_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    previous = generate_listops(tmp_path / "kept", progress=False, **_CUSTOM)
    previous_bytes = {split: path.read_bytes() for split, path in previous.items()}

    real_sampler = listops.sample_listops_tree
    calls = 0

    def interrupting_sampler(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 400:  # well into the run: train is partly written
            raise KeyboardInterrupt
        return real_sampler(*args, **kwargs)

    monkeypatch.setattr(listops, "sample_listops_tree", interrupting_sampler)
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        generate_listops(fresh, progress=False, **_CUSTOM)
    assert list(fresh.iterdir()) == []  # no split, no temporary folder

    calls = 0
    with pytest.raises(KeyboardInterrupt):  # an interrupted rerun keeps the earlier complete files
        generate_listops(tmp_path / "kept", progress=False, overwrite=True, **{**_CUSTOM, "seed": 9})
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == sorted(f"basic_{s}.tsv" for s in SPLITS)
    assert {split: path.read_bytes() for split, path in previous.items()} == previous_bytes


def test_listops_overwrite_interrupted_between_renames_keeps_the_old_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "listops-1000"
    previous = {split: path.read_bytes() for split, path in generate_listops(out, progress=False, **_CUSTOM).items()}
    real_replace, renames = os.replace, 0

    def interrupted_replace(source, target):
        nonlocal renames
        renames += 1
        if renames == 2:  # between the renames that swap the sets (whichever they are)
            raise KeyboardInterrupt
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        generate_listops(out, progress=False, overwrite=True, **{**_CUSTOM, "seed": 9})
    assert {split: (out / f"basic_{split}.tsv").read_bytes() for split in SPLITS} == previous
    assert sorted(path.name for path in tmp_path.iterdir()) == ["listops-1000"]  # nothing left aside or staged


def test_listops_run_waits_for_another_and_deletes_none_of_its_folders(tmp_path: Path) -> None:
    """A run in progress (here: this test, holding the lock) keeps its staging folder; the second run waits."""
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "listops-1000"
    out.mkdir()
    # Its staging folder, where this version and where earlier versions put it.
    others = [tmp_path / ".listops-1000.listops-tmp-other", out / ".listops-tmp-other"]
    for folder in others:
        folder.mkdir()
        (folder / "basic_train.tsv").write_text(HEADER)
    lock = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)
    outcome: dict[str, object] = {}

    def second_run() -> None:
        try:
            outcome["paths"] = generate_listops(out, progress=False, **_CUSTOM)
        except BaseException as error:  # reported below
            outcome["error"] = error

    thread = threading.Thread(target=second_run)
    thread.start()
    try:
        thread.join(timeout=1.0)
        assert thread.is_alive(), outcome  # waiting for the lock
        assert all((folder / "basic_train.tsv").is_file() for folder in others)
    finally:
        os.close(lock)  # the first run ends
    thread.join(timeout=60)
    assert "error" not in outcome, outcome
    assert sorted(path.name for path in out.iterdir()) == sorted(f"basic_{split}.tsv" for split in SPLITS)
    assert not any(folder.exists() for folder in others)  # once no run owns them, leftovers go


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(num_train=-1), "num_train must be an int >= 1, got -1"),
        (dict(num_val=0), r"num_val must be an int >= 1, got 0 \(an empty split"),
        (dict(num_test=2.5), "num_test must be an int"),
        (dict(min_length=60, max_length=60), r"min_length \(60\) must be smaller than max_length \(60\)"),
        (dict(min_length=100, max_length=50), "must be smaller"),
        (dict(min_length=10, max_length=11), "no length lies strictly between"),
        (dict(max_depth=0), "max_depth must be an int >= 1"),
        (dict(max_args=1), "max_args must be an int >= 2"),
        (dict(max_depth=2, max_args=3, min_length=10, max_length=50), "min_length .* is unreachable"),
        (dict(seed=-3), "seed must be an int >= 0"),
    ],
)
def test_listops_bad_arguments(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_listops(tmp_path, progress=False, **{**_CUSTOM, **overrides})
    assert list(tmp_path.iterdir()) == []  # validated before anything is written


def test_listops_cli_helpers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    listops.add_generate_listops_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path), *listops_generate_flags(num_train=3, min_length=10, max_length=40)]
    )
    assert (args.seed, args.max_depth, args.max_args) == (0, 10, 10)
    listops.run_generate_listops(args)
    assert len(_read_split(tmp_path / "basic_train.tsv")) == 3
    assert "basic_test.tsv" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Pathfinder: flood fills over the generator's layers and the image
# ---------------------------------------------------------------------------

_NEIGHBOURS = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


def _flood(mask: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Pixels 8-connected to `start` within `mask` (empty if start is off the mask)."""
    seen = np.zeros_like(mask, dtype=bool)
    if not mask[start]:
        return seen
    seen[start] = True
    queue = deque([start])
    while queue:
        row, col = queue.popleft()
        for dr, dc in _NEIGHBOURS:
            r, c = row + dr, col + dc
            if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and mask[r, c] and not seen[r, c]:
                seen[r, c] = True
                queue.append((r, c))
    return seen


def _count_components(mask: np.ndarray) -> int:
    remaining = mask.copy()
    count = 0
    while remaining.any():
        start = tuple(int(i) for i in np.argwhere(remaining)[0])
        remaining &= ~_flood(remaining, start)
        count += 1
    return count


def _check_sample_geometry(sample) -> None:
    """Both labels' meaning, verified on the generator's own layers and on the image."""
    image = sample.image
    assert image.dtype == np.uint8 and image.shape == (32, 32)
    strokes = sample.snake_masks[0] | sample.snake_masks[1] | sample.distractor_mask
    assert np.array_equal(image > 0, strokes | sample.marker_mask)

    # Exactly two markers, each on the snake it claims to sit on.
    assert len(sample.marker_centers) == 2
    assert _count_components(sample.marker_mask) == 2
    first, second = sample.marker_pixels
    for pixel, snake in zip((first, second), sample.marker_snakes):
        assert sample.marker_mask[pixel] and sample.snake_masks[snake][pixel]

    # The two target snakes and the distractors never touch one another.
    assert not (sample.snake_masks[0] & sample.snake_masks[1]).any()
    assert not (sample.distractor_mask & (sample.snake_masks[0] | sample.snake_masks[1])).any()

    reached_on_snake = _flood(sample.snake_masks[sample.marker_snakes[0]], first)
    reached_on_strokes = _flood(strokes, first)
    reached_on_image = _flood(image > 0, first)
    if sample.label == 1:
        assert sample.marker_snakes == (0, 0)
        assert reached_on_snake[second], "label 1: markers must be joined by one drawn snake"
        assert reached_on_image[second]
    else:
        assert sample.marker_snakes == (0, 1)
        assert not reached_on_strokes[second], "label 0: no drawn path may join the markers"
        assert not reached_on_image[second]


_PF_NUM, _PF_PER_FOLDER, _PF_SEED = 36, 16, 0


@pytest.fixture(scope="module")
def pathfinder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int, Path]]]:
    """A 32x32 / contour 14 run of 36 images in batches of 16; returns (task folder, records).

    Each record is (global image index, label from metadata, image path).
    """
    root = tmp_path_factory.mktemp("pathfinder")
    task_dir = generate_pathfinder(
        root,
        resolution=32,
        difficulty=14,
        num_images=_PF_NUM,
        seed=_PF_SEED,
        images_per_folder=_PF_PER_FOLDER,
        progress=False,
    )
    assert task_dir == root / "pathfinder32" / "curv_contour_length_14"
    records = []
    metadata_files = sorted((task_dir / "metadata").iterdir(), key=lambda p: int(p.stem))
    assert [p.name for p in metadata_files] == ["0.npy", "1.npy", "2.npy"]
    for metadata in metadata_files:
        batch = int(metadata.stem)
        lines = metadata.read_text(encoding="ascii").splitlines()
        assert len(lines) == (_PF_PER_FOLDER if batch < 2 else _PF_NUM - 2 * _PF_PER_FOLDER)
        for position, line in enumerate(lines):
            fields = line.split(" ")
            assert len(fields) >= 4
            assert fields[0] == f"imgs/{batch}"
            assert fields[1] == f"sample_{position}.png"
            assert int(fields[2]) == position
            assert fields[3] in ("0", "1")
            path = task_dir / fields[0] / fields[1]
            assert path.is_file()
            records.append((batch * _PF_PER_FOLDER + position, int(fields[3]), path))
    return task_dir, records


def test_pathfinder_files_are_grayscale_pngs_with_both_labels(pathfinder_run) -> None:
    task_dir, records = pathfinder_run
    assert len(records) == _PF_NUM
    for _, _, path in records:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "L" and image.size == (32, 32)
    labels = [label for _, label, _ in records]
    assert 0 < sum(labels) < len(labels)
    # Exactly the official layout; no leftover temporary batch folders.
    bookkeeping = (".pathfinder-settings", ".pathfinder-complete")
    assert sorted(p.name for p in task_dir.iterdir() if not p.name.startswith(bookkeeping)) == ["imgs", "metadata"]
    assert sorted(p.name for p in (task_dir / "imgs").iterdir()) == ["0", "1", "2"]


def test_pathfinder_written_images_have_the_meaning_of_their_label(pathfinder_run) -> None:
    _, records = pathfinder_run
    for index, label, path in records:
        sample = draw_indexed_pathfinder_sample(_PF_SEED, 32, 14, index)
        with Image.open(path) as image:
            assert np.array_equal(np.asarray(image), sample.image)
        assert sample.label == label
        _check_sample_geometry(sample)


@pytest.mark.parametrize("difficulty", [6, 9])
def test_pathfinder_other_difficulties(difficulty: int) -> None:
    params = pathfinder_params(32, difficulty)
    rng = np.random.default_rng(difficulty)
    for label in (0, 1, 0, 1):
        sample = draw_pathfinder_sample(rng, params, label)
        assert sample.label == label
        assert all(len(points) == difficulty + 1 for points in sample.snake_points)
        _check_sample_geometry(sample)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pathfinder_reproducible_and_independent_of_workers(pathfinder_run, tmp_path: Path) -> None:
    kwargs = dict(resolution=32, difficulty=14, num_images=10, seed=_PF_SEED, images_per_folder=8, progress=False)
    serial = generate_pathfinder(tmp_path / "serial", workers=1, **kwargs)
    parallel = generate_pathfinder(tmp_path / "parallel", workers=2, **kwargs)
    assert _tree_bytes(serial) == _tree_bytes(parallel)
    # The batch size only regroups images: image k is the same as in the 16-per-folder run.
    fixture_dir, _ = pathfinder_run
    for index in range(8):
        assert (serial / f"imgs/0/sample_{index}.png").read_bytes() == (
            fixture_dir / f"imgs/0/sample_{index}.png"
        ).read_bytes()
    other = generate_pathfinder(tmp_path / "other", **{**kwargs, "seed": 1})
    assert all(
        (other / f"imgs/0/sample_{i}.png").read_bytes() != (serial / f"imgs/0/sample_{i}.png").read_bytes()
        for i in range(4)
    )


def test_pathfinder_interrupted_run_is_consistent_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = dict(resolution=32, difficulty=6, num_images=10, seed=5, images_per_folder=4, progress=False)
    real_render = pathfinder._render_indexed_image
    calls = 0

    def render(task):
        nonlocal calls
        calls += 1
        if interrupt_after is not None and calls > interrupt_after:
            raise KeyboardInterrupt
        return real_render(task)

    monkeypatch.setattr(pathfinder, "_render_indexed_image", render)
    interrupt_after = 6  # batch 0 (4 images) completes, batch 1 is cut after 2 images
    with pytest.raises(KeyboardInterrupt):
        generate_pathfinder(tmp_path, **kwargs)
    task_dir = tmp_path / "pathfinder32" / "curv_baseline"
    assert sorted(p.name for p in (task_dir / "metadata").iterdir()) == ["0.npy"]
    assert sorted(p.name for p in (task_dir / "imgs").iterdir()) == ["0"]
    assert not [p for p in task_dir.iterdir() if p.name.startswith(".batch-")]
    for line in (task_dir / "metadata" / "0.npy").read_text().splitlines():
        assert (task_dir / line.split()[0] / line.split()[1]).is_file()

    calls, interrupt_after = 0, None
    generate_pathfinder(tmp_path, **kwargs)
    assert calls == 6  # the complete batch 0 was skipped
    assert sorted(p.name for p in (task_dir / "metadata").iterdir()) == ["0.npy", "1.npy", "2.npy"]
    monkeypatch.undo()
    fresh = generate_pathfinder(tmp_path / "fresh", **kwargs)
    assert _tree_bytes(fresh) == _tree_bytes(task_dir)

    with pytest.raises(ValueError, match="other settings"):
        generate_pathfinder(tmp_path, **{**kwargs, "seed": 6})
    (task_dir / ".pathfinder-settings.json").unlink()  # e.g. a copy of the official release
    with pytest.raises(ValueError, match="not made by this generator"):
        generate_pathfinder(tmp_path, **kwargs)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda out: pathfinder_params(48, 14),
            "unsupported Pathfinder resolution 48; choose one of 32, 64, 128, 256",
        ),
        (
            lambda out: pathfinder_params(32, 7),
            "unsupported Pathfinder difficulty 7; choose a contour length of 6, 9, 14",
        ),
        (
            lambda out: draw_pathfinder_sample(np.random.default_rng(0), pathfinder_params(32, 6), 2),
            "label must be 0 or 1",
        ),
        (lambda out: generate_pathfinder(out, num_images=-1), "num_images must be an int >= 0"),
        (lambda out: generate_pathfinder(out, num_images=9), "num_images must be >= 10, got 9: validation and test"),
        (lambda out: generate_pathfinder(out, num_images=4, workers=0), "workers must be an int >= 1"),
        (
            lambda out: generate_pathfinder(out, num_images=4, images_per_folder=0),
            "images_per_folder must be an int >= 1",
        ),
        (lambda out: generate_pathfinder(out, resolution=31, num_images=4), "unsupported Pathfinder resolution"),
        (lambda out: PathfinderParams(32, 14, 2.0, 0.5, 0, 1.5, 7.0, 1.0), "margin must be an int >= 1"),
        (lambda out: PathfinderParams(32, 14, 2.0, -0.5, 1, 1.5, 7.0, 1.0), "thickness must be > 0"),
        (lambda out: PathfinderParams(8, 14, 2.0, 0.5, 3, 1.5, 7.0, 1.0), "leave no room"),
    ],
)
def test_pathfinder_bad_arguments(tmp_path: Path, call, message: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        call(out)
    assert not out.exists()  # validated before anything is written


def test_pathfinder_presets_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    for resolution in (32, 64, 128, 256):
        params = pathfinder_params(resolution, 14)
        assert params.resolution == resolution and params.contour_length == 14
        assert params.distractor_length == 4 and params.antialias_scale == 2
    assert pathfinder_params(128, 9).continuity == 1.8

    parser = argparse.ArgumentParser()
    pathfinder.add_generate_pathfinder_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--num", "10", "--difficulty", "6", "--no-progress"])
    assert (args.resolution, args.workers, args.seed) == (32, 1, 0)
    pathfinder.run_generate_pathfinder(args)
    task_dir = tmp_path / "pathfinder32" / "curv_baseline"
    assert len((task_dir / "metadata" / "0.npy").read_text().splitlines()) == 10
    assert str(task_dir) in capsys.readouterr().out


def test_listops_refuses_to_overwrite_existing_data(tmp_path: Path) -> None:
    small = dict(num_train=3, num_val=1, num_test=1, min_length=10, max_length=40, progress=False)
    paths = generate_listops(tmp_path, **small)
    kept = {split: path.read_bytes() for split, path in paths.items()}
    with pytest.raises(
        ValueError,
        match=r"already holds basic_train.tsv, basic_val.tsv, basic_test.tsv; pass "
        r"--overwrite",
    ):
        generate_listops(tmp_path, **{**small, "seed": 1})
    assert {split: path.read_bytes() for split, path in paths.items()} == kept
    (tmp_path / "basic_train.tsv").unlink()  # a partial copy, e.g. an official one missing a file, is refused too
    with pytest.raises(ValueError, match=r"already holds basic_val.tsv, basic_test.tsv"):
        generate_listops(tmp_path, **small)

    stale = tmp_path / ".listops-tmp-killed"  # what a run killed outright (SIGKILL) leaves behind
    stale.mkdir()
    (stale / "basic_train.tsv").write_text("Source\tTarget\n")
    paths = generate_listops(tmp_path, overwrite=True, **{**small, "seed": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"basic_{s}.tsv" for s in SPLITS)
    assert paths["val"].read_bytes() != kept["val"]
