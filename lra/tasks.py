"""The task registry: every fact about one task of the package, in one place.

The builders (`lra.builders`), the tokenizers and `lra.task_info` (`lra.tokenization`), the model and
dataset cards (`hub_cards`) and `examples/run_lra.py` read a task's name, title, labels, input kind, default
length, text columns, chance level, whether our generators make its data, whether it belongs to the LRA, its Hub
source and the paper's accuracy from `TASK_SPECS`. The one deliberate copy is the `evaluate` module in
`lra/lra_accuracy/`, which is loaded on its own and cannot import this package; a test checks that it agrees.

This module imports nothing but the standard library, so `python -m lra` and the cards read it cheaply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

__all__ = [
    "CIFAR10_LABELS",
    "LRA_TASKS",
    "MNIST_LABELS",
    "PAPER_ACCURACY",
    "PAPER_LRA_AVERAGE",
    "PAPER_SOURCE",
    "PATHFINDER_DEFAULT_DIFFICULTY",
    "PATHFINDER_DEFAULT_RESOLUTION",
    "PATHFINDER_DIFFICULTIES",
    "PATHFINDER_RESOLUTIONS",
    "PATHX_RESOLUTION",
    "TASKS",
    "TASK_SPECS",
    "TaskSpec",
    "normalize_task",
]

# ---------------------------------------------------------------------------------------------------
# Pathfinder / Path-X
# ---------------------------------------------------------------------------------------------------

#: Image sides of the Pathfinder variants (the release has 32, 64, 128 and 256).
PATHFINDER_RESOLUTIONS: tuple[int, ...] = (32, 64, 128, 256)
#: Contour length (difficulty) -> folder of the release.
PATHFINDER_DIFFICULTIES: Mapping[int, str] = {
    6: "curv_baseline",
    9: "curv_contour_length_9",
    14: "curv_contour_length_14",
}
#: LRA's Pathfinder: 32x32, contour length 14.
PATHFINDER_DEFAULT_RESOLUTION = 32
PATHFINDER_DEFAULT_DIFFICULTY = 14
#: Path-X: Pathfinder at 128x128 with the same contour length.
PATHX_RESOLUTION = 128

#: ListOps' closed vocabulary, in token-id order after the specials (:mod:`lra.tokenization`): the digits, the four
#: operators and the closing bracket. The release's parentheses are no tokens (the tokenizer drops them); the builder
#: refuses a source with anything else.
LISTOPS_SYMBOLS: tuple[str, ...] = (*(str(digit) for digit in range(10)), "[MAX", "[MIN", "[MED", "[SM", "]")

# ---------------------------------------------------------------------------------------------------
# Class names
# ---------------------------------------------------------------------------------------------------

_DIGITS: tuple[str, ...] = tuple(str(digit) for digit in range(10))
CIFAR10_LABELS: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
#: sMNIST / pMNIST class names by the ``labels`` option: MNIST's digits, or Fashion-MNIST's ten kinds of clothing
#: (in label order, from its README).
MNIST_LABELS: Mapping[str, tuple[str, ...]] = {
    "digits": _DIGITS,
    "fashion": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}

# ---------------------------------------------------------------------------------------------------
# The paper's numbers
# ---------------------------------------------------------------------------------------------------

#: Where :data:`PAPER_ACCURACY` comes from (the project's design notes); shown wherever the numbers are.
PAPER_SOURCE = "as transcribed, not re-read from the PDF"
#: Published test accuracy in percent, by model and task (``None``: the model failed the task, as every transformer
#: fails Path-X). The Transformer row is the LRA paper's leaderboard row, which the LaS paper quotes; the LaS row and
#: the sMNIST / pMNIST numbers are :data:`PAPER_SOURCE`.
PAPER_ACCURACY: Mapping[str, Mapping[str, float | None]] = {
    "Transformer (LRA paper)": {
        "listops": 36.37,
        "text": 64.27,
        "retrieval": 57.46,
        "image": 42.44,
        "pathfinder": 71.40,
        "pathx": None,
        "smnist": 98.90,
        "pmnist": 97.90,
    },
    "LaS (paper)": {
        "listops": 53.05,
        "text": 79.28,
        "retrieval": 85.56,
        "image": 70.44,
        "pathfinder": 81.62,
        "pathx": None,
        "smnist": 99.18,
        "pmnist": 98.05,
    },
    "S4 (state-spaces repo)": {
        "listops": 59.60,
        "text": 86.82,
        "retrieval": 90.90,
        "image": 88.65,
        "pathfinder": 94.20,
        "pathx": 96.35,
        "smnist": 99.63,
        "pmnist": 98.70,
    },
    "Mega": {"listops": 63.14, "text": 90.43, "retrieval": 91.25, "image": 90.44, "pathfinder": 96.01, "pathx": 97.98},
}
#: The published "Avg" column of each row: the mean over the LRA tasks, a failed Path-X left out (the metric's
#: ``lra_average`` reproduces it).
PAPER_LRA_AVERAGE: Mapping[str, float] = {
    "Transformer (LRA paper)": 54.39,
    "LaS (paper)": 73.99,
    "S4 (state-spaces repo)": 86.09,
    "Mega": 88.21,
}
_LAS_ROW = "LaS (paper)"

# ---------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything the package states about one task.

    Attributes:
        name: the task's name (`"pathx"`), as `lra.load_lra` takes it.
        title: short title (`"Path-X"`); `full_title` adds `"LRA "` for the LRA tasks.
        summary: what the task is, in one phrase (model cards add the number of classes).
        data_title: the title of its configuration on a dataset card.
        data_description: its description on a dataset card (the data, the split convention, the source files).
        labels: the class names in label order (for sMNIST / pMNIST: the `"digits"` option's; see
            `MNIST_LABELS`).
        input_kind: `"tokens"` (one sequence), `"pair"` (two documents, a two-tower model) or `"pixels"`.
        default_length: tokens per sequence (`<eos>` included; per document for pairs) or pixels per image, at
            the default options.
        text_columns: the columns a tokenizer reads (empty for pixel tasks).
        generated: our seeded generator makes its data, so `run_lra.py` needs no `--data_dir` (Path-X can be
            generated too, with `--resolution 128`, but at 200,000 images of 16,384 pixels not implicitly).
        in_lra: one of the six tasks of the Long Range Arena (sMNIST and pMNIST are not; they are not part of the
            LRA average).
        hub_repo: the Hub data set read when `lra.load_lra` gets no `data_dir` (`lra.builders.hub`).
    """

    name: str
    title: str
    summary: str
    data_title: str
    data_description: str
    labels: tuple[str, ...]
    input_kind: Literal["tokens", "pair", "pixels"]
    default_length: int
    text_columns: tuple[str, ...] = ()
    generated: bool = False
    in_lra: bool = True
    hub_repo: str | None = None

    @property
    def full_title(self) -> str:
        """The task's name in a model-index and in results: `"LRA ListOps"`, `"sMNIST"`."""
        return f"LRA {self.title}" if self.in_lra else self.title

    @property
    def chance_level(self) -> float:
        """Accuracy of guessing, as a fraction: one over the number of classes."""
        return 1 / len(self.labels)

    @property
    def paper_accuracy(self) -> float | None:
        """The LaS paper's test accuracy in percent (`PAPER_SOURCE`); `None` where it reports a failure."""
        return PAPER_ACCURACY[_LAS_ROW][self.name]


_PATHFINDER_DATA = (
    "Synthetic images of curved dashed paths with two markers; the label says whether the markers "
    "are connected by one path. Pixels row-major, 8-bit grayscale. Images in metadata order (metadata "
    "files by integer name); the first 80% are `train`, the next 10% `validation`, the last 10% "
    "`test`."
)

TASK_SPECS: Mapping[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "listops",
            "ListOps",
            "ListOps: evaluate nested list operations (MAX, MIN, MED, SUM_MOD)",
            "ListOps",
            "Nested expressions of `[MAX`, `[MIN`, `[MED` (median) and `[SM` (sum mod 10) over digits, up to 2,000 "
            "tokens; the label is the value of the expression (10 classes). `text` is the source exactly as released, "
            "parentheses included (LRA's tokenizer drops them). From `listops-1000/basic_{train,val,test}.tsv`.",
            labels=_DIGITS,
            input_kind="tokens",
            default_length=2048,
            text_columns=("text",),
            generated=True,
        ),
        TaskSpec(
            "text",
            "Text",
            "Text: byte-level IMDb sentiment classification",
            "Text (IMDb, byte-level)",
            "IMDb movie reviews, read as bytes (LRA uses up to 4,096 bytes); binary sentiment. IMDb has no "
            "validation split: as in S4, `validation` holds the test reviews, the same as `test`.",
            labels=("neg", "pos"),
            input_kind="tokens",
            default_length=4096,
            text_columns=("text",),
            hub_repo="stanfordnlp/imdb",
        ),
        TaskSpec(
            "retrieval",
            "Retrieval",
            "Retrieval: do two byte-level documents (AAN) cite each other",
            "Retrieval (AAN, byte-level)",
            "Pairs of papers of the ACL Anthology Network, read as bytes (up to 4,000 per document, two-tower "
            "models); the label says whether one cites the other. From "
            "`tsv_data/new_aan_pairs.{train,eval,test}.tsv`; texts are kept verbatim, quote characters included.",
            labels=("unrelated", "related"),
            input_kind="pair",
            default_length=4000,
            text_columns=("text1", "text2"),
        ),
        TaskSpec(
            "image",
            "Image",
            "Image: CIFAR-10 as a sequence of grayscale pixels",
            "Image (CIFAR-10, grayscale)",
            "CIFAR-10 images as sequences of 1,024 grayscale pixels, row-major; gray = round(0.299 R + 0.587 G + "
            "0.114 B), halves up. `train` is the first 45,000 training images, `validation` the last 5,000, `test` "
            "the test batch.",
            labels=CIFAR10_LABELS,
            input_kind="pixels",
            default_length=32 * 32,
            hub_repo="uoft-cs/cifar10",
        ),
        TaskSpec(
            "pathfinder",
            "Pathfinder",
            f"Pathfinder: are two points connected by a path ({PATHFINDER_DEFAULT_RESOLUTION}x"
            f"{PATHFINDER_DEFAULT_RESOLUTION} image as a sequence)",
            "Pathfinder",
            _PATHFINDER_DATA,
            labels=("disconnected", "connected"),
            input_kind="pixels",
            default_length=PATHFINDER_DEFAULT_RESOLUTION**2,
            generated=True,
        ),
        TaskSpec(
            "pathx",
            "Path-X",
            f"Path-X: Pathfinder at {PATHX_RESOLUTION}x{PATHX_RESOLUTION} "
            f"(sequences of {PATHX_RESOLUTION**2:,} pixels)",
            "Path-X",
            f"Pathfinder at {PATHX_RESOLUTION} x {PATHX_RESOLUTION} = {PATHX_RESOLUTION**2:,} pixels with contour "
            f"length {PATHFINDER_DEFAULT_DIFFICULTY}, the hardest LRA task. "
            "Same format and 80/10/10 split as Pathfinder.",
            labels=("disconnected", "connected"),
            input_kind="pixels",
            default_length=PATHX_RESOLUTION**2,
        ),
        TaskSpec(
            "smnist",
            "sMNIST",
            "sequential MNIST: a 28x28 image (MNIST digits or Fashion-MNIST clothing) read as a sequence of "
            "784 pixels",
            "Sequential MNIST (not an LRA task)",
            "MNIST (`smnist`) or Fashion-MNIST (`smnist_fashion`) 28 x 28 images as sequences of 784 pixels, "
            "row-major, from the four idx files. `train` is the first 54,000 training images, `validation` the last "
            "6,000, `test` the 10,000 t10k images.",
            labels=MNIST_LABELS["digits"],
            input_kind="pixels",
            default_length=28 * 28,
            in_lra=False,
        ),
        TaskSpec(
            "pmnist",
            "pMNIST",
            "permuted MNIST: sMNIST with the 784 pixel positions in one fixed random order "
            "(`lra.pmnist_permutation()`)",
            "Permuted MNIST (not an LRA task)",
            "sMNIST with the 784 pixel positions in one fixed order: position i holds pixel perm[i] of the row-major "
            "image, perm = `numpy.random.RandomState(0).permutation(784)` (NumPy's legacy generator, whose stream is "
            "frozen; it starts 693, 85, 647, 392, 765, 14, 299, 711). Splits as sMNIST.",
            labels=MNIST_LABELS["digits"],
            input_kind="pixels",
            default_length=28 * 28,
            in_lra=False,
        ),
    )
}

#: Every task, in table order: the six LRA tasks, then sMNIST and pMNIST.
TASKS: tuple[str, ...] = tuple(TASK_SPECS)
#: The six tasks of the Long Range Arena: the tasks of the LRA average.
LRA_TASKS: tuple[str, ...] = tuple(name for name, spec in TASK_SPECS.items() if spec.in_lra)


def normalize_task(task: str) -> str:
    """Canonical task name: `"Path-X"`, `"path_x"` and `"pathx"` all give `"pathx"`.

    Raises:
        ValueError: for a name that is not one of `TASKS` (the message lists them).
    """
    key = str(task).lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in TASK_SPECS:
        raise ValueError(f"Unknown LRA task {task!r}: valid tasks are {', '.join(TASKS)}.")
    return key
