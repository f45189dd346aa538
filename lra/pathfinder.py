"""Seeded generator for the synthetic Pathfinder / Path-X tasks of the Long Range Arena: the data set on disk.

The images are drawn by `lra.pathfinder_draw` (the algorithm is described there); this module writes them in
the release's layout, batch by batch, so that an interrupted run resumes where it stopped
(`generate_pathfinder`), tells the builders whether a folder is complete (`incomplete_generation`),
and holds the command line `python -m lra generate pathfinder`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict
from io import BytesIO
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .faults import kill_point
from .pathfinder_draw import (
    PathfinderParams,
    PathfinderSample,
    draw_indexed_pathfinder_sample,
    draw_pathfinder_sample,
    pathfinder_params,
)
from .tasks import (
    PATHFINDER_DEFAULT_DIFFICULTY,
    PATHFINDER_DEFAULT_RESOLUTION,
    PATHFINDER_DIFFICULTIES,
    PATHFINDER_RESOLUTIONS,
)
from .validation import check_int

__all__ = [  # the rasteriser's names too: `from lra.pathfinder import draw_pathfinder_sample` works
    "PathfinderParams",
    "PathfinderSample",
    "pathfinder_params",
    "draw_pathfinder_sample",
    "draw_indexed_pathfinder_sample",
    "generate_pathfinder",
    "incomplete_generation",
    "validate_pathfinder_arguments",
    "add_generate_pathfinder_arguments",
    "run_generate_pathfinder",
]

# Defaults of the generator (the resolution and difficulty defaults are LRA's Pathfinder, lra.tasks): the
# command line (python -m lra generate pathfinder) and examples/run_lra.py take them from here.
DEFAULT_NUM_IMAGES = 200_000  # the size of the release
DEFAULT_SEED = 0
DEFAULT_WORKERS = 1
DEFAULT_IMAGES_PER_FOLDER = 1000

# Written next to the batches so that a rerun can tell whether the existing
# batches came from the same settings before it skips them.
_SETTINGS_FILE = ".pathfinder-settings.json"
# Written last, with the image count: its absence means the generation was interrupted (or is running).
_COMPLETE_FILE = ".pathfinder-complete.json"
_BATCH_TMP_PREFIX = ".batch-"
# Fewer images would leave the validation or test split (10% each, rounded down) empty.
MIN_IMAGES = 10

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Data set
# ---------------------------------------------------------------------------


def _encode_png(image: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")  # uint8 HxW -> mode "L"
    return buffer.getvalue()


def _render_indexed_image(task: tuple[int, int, int, int]) -> tuple[int, bytes]:
    """Worker entry point: (seed, resolution, difficulty, index) -> (label, PNG bytes)."""
    sample = draw_indexed_pathfinder_sample(*task)
    return sample.label, _encode_png(sample.image)


def _batch_paths(task_dir: Path, batch: int) -> tuple[Path, Path]:
    return task_dir / "imgs" / str(batch), task_dir / "metadata" / f"{batch}.npy"


def _batch_is_complete(task_dir: Path, batch: int, size: int) -> bool:
    """A batch is complete when its metadata lists `size` images that all exist."""
    images, metadata = _batch_paths(task_dir, batch)
    if not metadata.is_file():
        return False
    lines = metadata.read_text(encoding="ascii").splitlines()
    return len(lines) == size and all((images / line.split()[1]).is_file() for line in lines)


def _write_json_atomically(path: Path, content: object) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(content, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def incomplete_generation(task_dir: str | os.PathLike[str], num_listed: int) -> str | None:
    """Why a folder written by `generate_pathfinder` must not be loaded, or None when it may be.

    `num_listed` is the number of images its metadata files list. A folder without our settings file
    (such as a copy of the official release) is not checked. One with it must hold the completion record
    that the generator writes last, and exactly the image count recorded there.
    """
    task_dir = Path(task_dir)
    if not (task_dir / _SETTINGS_FILE).is_file():
        return None
    record = task_dir / _COMPLETE_FILE
    if not record.is_file():
        return (
            f"{task_dir}: the Pathfinder generation did not finish (no {_COMPLETE_FILE}; {num_listed} image(s) "
            "so far); rerun the same `python -m lra generate pathfinder` command to complete it"
        )
    try:
        expected = json.loads(record.read_text(encoding="utf-8"))["num_images"]
    except (ValueError, KeyError, TypeError):
        return f"{record}: not a Pathfinder completion record; rerun the generator"
    if expected != num_listed:
        return (
            f"{task_dir}: the metadata files list {num_listed} image(s), but the generation recorded "
            f"{expected} in {_COMPLETE_FILE}; batches were added or removed since: rerun the generator"
        )
    return None


def _remove_extra_batches(task_dir: Path, num_batches: int) -> None:
    """Delete batches numbered `num_batches` and up: left by an earlier run with a larger `num_images`.

    Only called once the settings file proved the batches are this generator's, made with the same
    settings, so nothing is lost that the same command could not write again. Metadata goes first, so
    that no metadata file ever points at a removed image.
    """
    extra = sorted(
        int(path.stem)
        for path in (task_dir / "metadata").glob("*.npy")
        if path.stem.isdigit() and int(path.stem) >= num_batches
    )
    extra_images = [
        path for path in (task_dir / "imgs").iterdir() if path.name.isdigit() and int(path.name) >= num_batches
    ]
    for batch in extra:
        (task_dir / "metadata" / f"{batch}.npy").unlink()
    for folder in extra_images:
        shutil.rmtree(folder)
    if extra:
        logger.warning(
            "Removed %d Pathfinder batch(es) of an earlier, larger run from %s (batches %d to %d)",
            len(extra),
            task_dir,
            extra[0],
            extra[-1],
        )


def _write_settings(task_dir: Path, settings: dict[str, object]) -> None:
    """Record the settings, or refuse if the folder holds batches made with others."""
    path = task_dir / _SETTINGS_FILE
    existing = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if existing == settings:
        return
    # Never mix in (or overwrite) batches of other settings or of unknown origin,
    # such as a copy of the official release.
    if any((task_dir / "metadata").glob("*.npy")):
        origin = f"generated with other settings ({existing})" if existing else "not made by this generator"
        raise ValueError(
            f"{task_dir} already holds Pathfinder batches {origin}; choose another output folder or remove it"
        )
    _write_json_atomically(path, settings)


def _write_batch(task_dir: Path, batch: int, results: Iterable[tuple[int, bytes]], bar: tqdm) -> None:
    """Write one batch folder and its metadata, moving them into place only when complete.

    Metadata goes last, so a metadata file never points at missing images.
    """
    images_dir, metadata_path = _batch_paths(task_dir, batch)
    staging = Path(tempfile.mkdtemp(prefix=f"{_BATCH_TMP_PREFIX}{batch}-", dir=task_dir))
    try:
        staged_images = staging / "imgs"
        staged_images.mkdir()
        lines = []
        for position, (label, png) in enumerate(results):
            name = f"sample_{position}.png"
            (staged_images / name).write_bytes(png)
            lines.append(f"imgs/{batch} {name} {position} {label}\n")
            bar.update(1)
        staged_metadata = staging / "metadata.npy"
        staged_metadata.write_text("".join(lines), encoding="ascii", newline="")

        # Replace an incomplete leftover: drop its metadata first so that at no
        # moment does a metadata file describe a folder being swapped.
        metadata_path.unlink(missing_ok=True)
        if images_dir.exists():
            shutil.rmtree(images_dir)
        os.replace(staged_images, images_dir)
        os.replace(staged_metadata, metadata_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def generate_pathfinder(
    out_dir: str | os.PathLike[str],
    resolution: int = PATHFINDER_DEFAULT_RESOLUTION,
    difficulty: int = PATHFINDER_DEFAULT_DIFFICULTY,
    num_images: int = DEFAULT_NUM_IMAGES,
    seed: int = DEFAULT_SEED,
    workers: int = DEFAULT_WORKERS,
    images_per_folder: int = DEFAULT_IMAGES_PER_FOLDER,
    progress: bool = True,
) -> Path:
    """Generate a Pathfinder variant in the official layout under the archive root `out_dir`.

    Writes `out_dir/pathfinder{resolution}/{curv_...}/imgs/<k>/sample_<i>.png`
    and `.../metadata/<k>.npy` (text: one line `imgs/<k> sample_<i>.png <i> <label>`
    per image), `images_per_folder` images per batch `k`. Image number
    `k * images_per_folder + i` is `draw_indexed_pathfinder_sample` of
    that index, so the output depends only on the seed, never on `workers`.

    Each batch is written to a temporary folder and moved into place when
    complete, metadata last; a rerun with the same settings skips complete
    batches, and removes the batches beyond `num_images` that an earlier, larger
    run left. `.pathfinder-complete.json` (the image count) is written last and
    removed when a run starts: `lra.load_lra` refuses a folder without it.
    Only one generator should write into a folder at a time.

    Returns:
        The task folder, e.g. `out_dir/pathfinder32/curv_contour_length_14`.

    Raises:
        ValueError: on unsupported resolution/difficulty, invalid counts (fewer
            than 10 images leave a split empty), or an output folder generated
            with different settings.
    """
    params = validate_pathfinder_arguments(resolution, difficulty, num_images, seed, workers, images_per_folder)

    task_dir = Path(out_dir) / f"pathfinder{resolution}" / PATHFINDER_DIFFICULTIES[difficulty]
    (task_dir / "imgs").mkdir(parents=True, exist_ok=True)
    (task_dir / "metadata").mkdir(exist_ok=True)
    _write_settings(task_dir, {"seed": seed, "images_per_folder": images_per_folder, "params": asdict(params)})
    (task_dir / _COMPLETE_FILE).unlink(missing_ok=True)  # until this run ends, the folder is incomplete
    for leftover in task_dir.glob(f"{_BATCH_TMP_PREFIX}*"):  # from a run that was killed outright
        shutil.rmtree(leftover, ignore_errors=True)

    batches = [
        range(start, min(start + images_per_folder, num_images)) for start in range(0, num_images, images_per_folder)
    ]
    pending = [(k, indices) for k, indices in enumerate(batches) if not _batch_is_complete(task_dir, k, len(indices))]
    done = num_images - sum(len(indices) for _, indices in pending)

    executor: Executor | None = ProcessPoolExecutor(max_workers=workers) if workers > 1 and pending else None
    try:
        with tqdm(
            total=num_images,
            initial=done,
            desc=f"Pathfinder{resolution}/{difficulty}",
            unit="img",
            disable=not progress,
        ) as bar:
            for k, indices in pending:
                tasks = [(seed, resolution, difficulty, index) for index in indices]
                results: Iterator[tuple[int, bytes]]
                if executor is None:
                    results = map(_render_indexed_image, tasks)
                else:
                    chunk = max(1, len(tasks) // (4 * workers))
                    results = executor.map(_render_indexed_image, tasks, chunksize=chunk)
                _write_batch(task_dir, k, results, bar)
                kill_point("pathfinder-batch")
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    _remove_extra_batches(task_dir, len(batches))
    _write_json_atomically(task_dir / _COMPLETE_FILE, {"num_images": num_images, "batches": len(batches)})
    return task_dir


def validate_pathfinder_arguments(
    resolution: int,
    difficulty: int,
    num_images: int,
    seed: int = DEFAULT_SEED,
    workers: int = DEFAULT_WORKERS,
    images_per_folder: int = DEFAULT_IMAGES_PER_FOLDER,
) -> PathfinderParams:
    """Check the arguments of `generate_pathfinder` (ValueError naming the bad one); return the preset."""
    params = pathfinder_params(resolution, difficulty)
    check_int("num_images", num_images, least=0)
    check_int("seed", seed, least=0)
    check_int("workers", workers)
    check_int("images_per_folder", images_per_folder)
    if num_images < MIN_IMAGES:
        raise ValueError(
            f"num_images must be >= {MIN_IMAGES}, got {num_images}: validation and test get 10% each "
            "(rounded down), so fewer images leave them empty"
        )
    return params


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_generate_pathfinder_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `generate pathfinder` options to `parser`."""
    parser.add_argument(
        "--out", required=True, type=Path, help="archive root; writes OUT/pathfinder{RES}/{curv_...}/imgs and metadata"
    )
    parser.add_argument(
        "--num", required=True, type=int, help=f"number of images (the release has {DEFAULT_NUM_IMAGES})"
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=PATHFINDER_DEFAULT_RESOLUTION,
        choices=PATHFINDER_RESOLUTIONS,
        help="image side (default %(default)s; 128 is Path-X)",
    )
    parser.add_argument(
        "--difficulty",
        type=int,
        default=PATHFINDER_DEFAULT_DIFFICULTY,
        choices=tuple(PATHFINDER_DIFFICULTIES),
        help="contour length: 6 (curv_baseline), 9 or 14 (default %(default)s, the one LRA uses)",
    )
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="worker processes (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument(
        "--images-per-folder",
        type=int,
        default=DEFAULT_IMAGES_PER_FOLDER,
        help="images per imgs/<k> batch folder (default %(default)s)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run_generate_pathfinder(args: argparse.Namespace) -> None:
    """Run `generate_pathfinder` from parsed command-line arguments and print the task folder."""
    task_dir = generate_pathfinder(
        args.out,
        resolution=args.resolution,
        difficulty=args.difficulty,
        num_images=args.num,
        seed=args.seed,
        workers=args.workers,
        images_per_folder=getattr(args, "images_per_folder", DEFAULT_IMAGES_PER_FOLDER),
        progress=getattr(args, "progress", True),
    )
    print(task_dir)
