"""Tokenizers and model inputs for the Long Range Arena.

Token ids (the same specials for every text task):

| id | token |
|---|---|
| 0 | `<pad>` |
| 1 | `<unk>` |
| 2 | `<eos>`, appended to every sequence (as S4 does); `max_length` counts it |
| ListOps | 3..12 the digits `0`..`9`; 13 `[MAX`, 14 `[MIN`, 15 `[MED`, 16 `[SM`, 17 `]` (vocabulary 18) |
| Text, Retrieval | byte `b` of the UTF-8 encoding -> id `3 + b` (3..258, vocabulary 259) |

ListOps: the parentheses of the release's format carry no information and are dropped by the tokenizer's normalizer,
so `decode(encode(s))` gives `s` without them. Text and Retrieval: every byte is one token and
`decode(encode(s), skip_special_tokens=True) == s` for any string; text that happens to spell `<eos>` is encoded as
bytes too (`split_special_tokens`).

Image, Pathfinder, Path-X, sMNIST and pMNIST have no tokenizer: their pixels are the input (see `encode`).

All tokenizers are plain `transformers.PreTrainedTokenizerFast` objects built with the
`tokenizers` library; `save_pretrained` writes `tokenizer.json` and
`AutoTokenizer.from_pretrained(folder)` loads them back without remote code.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import datasets
import numpy as np
import PIL.Image
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

from image_processing_las import scale_pixels

from .builders import builder_class, pmnist_permutation, resolve_config_name
from .tasks import LISTOPS_SYMBOLS, TASK_SPECS, TASKS

__all__ = [
    "EOS_TOKEN_ID",
    "LISTOPS_SYMBOLS",
    "LRADataCollator",
    "PAD_TOKEN_ID",
    "SPECIAL_TOKENS",
    "TaskInfo",
    "UNK_TOKEN_ID",
    "encode",
    "get_tokenizer",
    "task_info",
]

logger = logging.getLogger(__name__)

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<eos>")
PAD_TOKEN_ID, UNK_TOKEN_ID, EOS_TOKEN_ID = range(len(SPECIAL_TOKENS))
_BYTE_OFFSET = len(SPECIAL_TOKENS)

_PIXEL_VOCABULARY = 256


@dataclasses.dataclass(frozen=True)
class TaskInfo:
    """What a model needs to know about an LRA task.

    Attributes:
        task: the task name.
        num_labels: number of classes.
        label_names: the class names, in label order.
        input_kind: `"tokens"` (`input_ids` of one sequence), `"pair"` (`input_ids` of two
            documents, shaped `(2, length)`: a two-tower model) or `"pixels"` (`pixel_values`,
            or pixel intensities as `input_ids`).
        max_length: default sequence length (tokens: including `<eos>`; pair: per document;
            pixels: the number of pixels).
        vocab_size: ids the inputs use (pixels as ids: 256).
        pad_token_id: padding id, `None` for pixels (fixed length).
    """

    task: str
    num_labels: int
    label_names: tuple[str, ...]
    input_kind: Literal["tokens", "pair", "pixels"]
    max_length: int
    vocab_size: int
    pad_token_id: int | None


def task_info(task: str, **options: Any) -> TaskInfo:
    """Describe `task` (options as in `lra.load_lra`: `pathfinder` takes `resolution` /
    `difficulty`, `smnist` / `pmnist` take `labels`, which sets `label_names`).

    | task | num_labels | input_kind | max_length | vocab_size |
    |---|---|---|---|---|
    | listops | 10 | tokens | 2048 | 18 |
    | text | 2 | tokens | 4096 | 259 |
    | retrieval | 2 | pair | 4000 | 259 |
    | image | 10 | pixels | 1024 | 256 |
    | pathfinder (32) | 2 | pixels | 1024 | 256 |
    | pathx | 2 | pixels | 16384 | 256 |
    | smnist, pmnist | 10 | pixels | 784 | 256 |
    """
    config_name = resolve_config_name(task, **options)  # validates task and options
    builder = builder_class(task)
    spec = TASK_SPECS[task]
    kind = spec.input_kind
    max_length = spec.default_length
    if kind == "pixels":
        resolution = getattr(builder.builder_configs[config_name], "resolution", None)
        if resolution is not None:  # Pathfinder's options choose its image size
            max_length = resolution**2
        vocab_size, pad_token_id = _PIXEL_VOCABULARY, None
    else:
        vocab_size = len(SPECIAL_TOKENS) + (len(LISTOPS_SYMBOLS) if task == "listops" else 256)
        pad_token_id = PAD_TOKEN_ID
    label_names = builder.label_names(config_name)
    return TaskInfo(
        task=task,
        num_labels=len(label_names),
        label_names=label_names,
        input_kind=kind,
        max_length=max_length,
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
    )


# ---------------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------------


def _wrap(backend: Tokenizer, task: str, **kwargs: Any) -> PreTrainedTokenizerFast:
    """Give a `tokenizers` backend the specials and appended `<eos>` every LRA tokenizer has."""
    pad, unk, eos = SPECIAL_TOKENS
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, EOS_TOKEN_ID)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad,
        unk_token=unk,
        eos_token=eos,
        model_max_length=TASK_SPECS[task].default_length,
        clean_up_tokenization_spaces=False,
        **kwargs,
    )


def _listops_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *LISTOPS_SYMBOLS))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS[UNK_TOKEN_ID]))
    # Parentheses become spaces, not nothing: "2)(3" must still give two tokens. (Two literal
    # replacements are faster than one regex.) Without a decoder, decode joins tokens with spaces.
    backend.normalizer = normalizers.Sequence([normalizers.Replace("(", " "), normalizers.Replace(")", " ")])
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return _wrap(backend, "listops")


def _byte_tokenizer(task: str) -> PreTrainedTokenizerFast:
    # The ByteLevel pre-tokenizer maps each byte to one printable character; a BPE model without
    # merges over exactly those 256 characters then gives one token per byte, and the ByteLevel
    # decoder maps them back to bytes. Without the regex split the text is not cut into words, so
    # nothing is lost or added (no prefix space).
    byte_chars = bytes_to_unicode()
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    vocab.update({byte_chars[byte]: _BYTE_OFFSET + byte for byte in range(256)})
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    # split_special_tokens: a review that contains the text "<eos>" is five bytes, not the EOS id.
    return _wrap(backend, task, split_special_tokens=True)


def get_tokenizer(task: str) -> PreTrainedTokenizerFast:
    """The tokenizer of a text task: word-level for `listops`, byte-level for `text` and `retrieval`.

    Ids are listed in this module's documentation; `model_max_length` is the task's default length.
    Raises `ValueError` for the pixel tasks (`image`, `pathfinder`, `pathx`, `smnist`,
    `pmnist`), which have no tokenizer: their pixels are used directly.
    """
    if task not in TASKS:
        raise ValueError(f"Unknown LRA task {task!r}; the tasks are: {', '.join(TASKS)}")
    if TASK_SPECS[task].input_kind == "pixels":
        raise ValueError(
            f"The LRA task {task!r} has no tokenizer: its pixels are used directly "
            f"(lra.encode gives pixel_values, or the intensities 0..255 as input_ids)"
        )
    return _listops_tokenizer() if task == "listops" else _byte_tokenizer(task)


# ---------------------------------------------------------------------------------------------------
# Encoding data sets
# ---------------------------------------------------------------------------------------------------


def _tokenize(
    tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], max_length: int
) -> tuple[list[list[int]], list[bool]]:
    """Token ids of `texts` cut to `max_length` (`<eos>` kept), and whether each text was cut."""
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        return_overflowing_tokens=True,
        return_attention_mask=False,
    )
    # A text longer than max_length comes back as several consecutive rows: keep its first one.
    ids: list[list[int]] = []
    truncated: list[bool] = []
    for row, sample in zip(encoded["input_ids"], encoded["overflow_to_sample_mapping"]):
        if sample < len(ids):
            truncated[sample] = True
        else:
            ids.append(row)
            truncated.append(False)
    return ids, truncated


def _pad_documents(documents: Sequence[Sequence[int]], pad_token_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """Stack documents into one `(num_documents, longest)` matrix of ids and one of mask."""
    length = max(len(document) for document in documents)
    ids = [list(document) + [pad_token_id] * (length - len(document)) for document in documents]
    mask = [[1] * len(document) + [0] * (length - len(document)) for document in documents]
    return ids, mask


def _encode_text_batch(
    batch: Mapping[str, list],
    *,
    tokenizer: PreTrainedTokenizerFast,
    columns: Sequence[str],
    max_length: int,
    truncation: bool,
) -> dict[str, list]:
    """`datasets.map` function: tokenize one or two text columns of a batch."""
    documents = [_tokenize(tokenizer, batch[column], max_length) for column in columns]
    num_truncated = [sum(flags) for flags in zip(*(truncated for _, truncated in documents))]
    if not truncation and any(num_truncated):
        raise ValueError(
            f"{sum(num_truncated)} text(s) are longer than max_length={max_length} tokens; LRA cuts "
            f"them by design: pass truncation=True (the default) or a larger max_length"
        )
    if len(columns) == 1:
        input_ids = documents[0][0]
        attention_mask = [[1] * len(ids) for ids in input_ids]
    else:
        padded = [_pad_documents(pair, tokenizer.pad_token_id) for pair in zip(*(ids for ids, _ in documents))]
        input_ids = [ids for ids, _ in padded]
        attention_mask = [mask for _, mask in padded]
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": batch["label"],
        "num_truncated": num_truncated,
    }


def _scale_pixels(batch: dict[str, Any]) -> dict[str, Any]:
    """Format transform: uint8 `pixel_values` -> float32 in [0, 1], computed when rows are read.

    The scaling of the model's image processor (`image_processing_las.scale_pixels`), so a
    model gets the same values from a data set row as from the image through a pipeline.
    """
    return {**batch, "pixel_values": scale_pixels(batch["pixel_values"])}


def pooled_side(num_pixels: int, pool_size: int) -> int:
    """The side of a square image of `num_pixels` after `pool_size x pool_size` averaging (a ValueError if the
    image is not square or its side not a multiple of `pool_size`)."""
    side = math.isqrt(num_pixels)
    if side * side != num_pixels or side % pool_size:
        raise ValueError(
            f"pixel_pool_size={pool_size} needs square images whose side is a multiple of it; these have "
            f"{num_pixels} pixels"
        )
    return side // pool_size


def pixel_pool_processor_settings(task: str, num_pixels: int, pool_size: int) -> dict[str, Any]:
    """The `LaSImageProcessor` settings that give a checkpoint's pipeline the pixels that
    `encode(task, ..., pixel_pool_size=pool_size)` gives the model: the pooled size, Pillow's box filter, and for
    pMNIST the permutation of the pooled image."""
    side = math.isqrt(num_pixels) if pool_size == 1 else pooled_side(num_pixels, pool_size)
    settings: dict[str, Any] = {"size": {"height": side, "width": side}}
    if pool_size > 1:
        settings.update(do_resize=True, resample=int(PIL.Image.Resampling.BOX))
    if task == "pmnist":
        settings["pixel_order"] = pmnist_permutation(side * side).tolist()
    return settings


def _pool_pixels(task: str, dataset: datasets.Dataset, pool_size: int, num_proc: int | None) -> datasets.Dataset:
    """The `pixels` column averaged over `pool_size x pool_size` blocks: the mean rounded half up, in uint8
    (exactly Pillow's `Image.reduce`, which the image processor uses for a box resize by a whole factor)."""
    num_pixels = len(dataset[0]["pixels"]) if len(dataset) else task_info(task).max_length
    small = pooled_side(num_pixels, pool_size)
    # pMNIST rows are permuted: back to image order, pool, then the pooled image's own fixed permutation.
    unpermute = np.argsort(pmnist_permutation(num_pixels)) if task == "pmnist" else None
    repermute = pmnist_permutation(small * small) if task == "pmnist" else None

    def pool(batch: dict[str, Any]) -> dict[str, Any]:
        rows = []
        for row in batch["pixels"]:
            pixels = np.asarray(row, dtype=np.uint8)
            if len(pixels) != num_pixels:
                raise ValueError(f"{task}: an image has {len(pixels)} pixels where the first has {num_pixels}")
            if unpermute is not None:
                pixels = pixels[unpermute]
            blocks = pixels.reshape(small, pool_size, small, pool_size).sum(axis=(1, 3), dtype=np.int64)
            pooled = ((blocks + pool_size**2 // 2) // pool_size**2).astype(np.uint8).reshape(-1)
            rows.append(pooled[repermute] if repermute is not None else pooled)
        return {**batch, "pixels": rows}

    return dataset.map(pool, batched=True, num_proc=num_proc, desc=f"Pooling {task} pixels {pool_size}x{pool_size}")


def _encode_split(
    task: str,
    dataset: datasets.Dataset,
    *,
    max_length: int | None,
    tokenizer: PreTrainedTokenizerFast | None,
    truncation: bool,
    num_proc: int | None,
    pixels_as: str,
    pixel_pool_size: int = 1,
) -> datasets.Dataset:
    info = task_info(task)
    if info.input_kind == "pixels":
        if pixel_pool_size > 1:
            dataset = _pool_pixels(task, dataset, pixel_pool_size, num_proc)
        if pixels_as == "ids":
            return dataset.rename_columns({"pixels": "input_ids", "label": "labels"})
        # Stored as uint8 under the model's argument name (so Trainer keeps the column); the floats
        # exist only per batch read, never as a float copy of the whole set.
        return dataset.rename_columns({"pixels": "pixel_values", "label": "labels"}).with_transform(_scale_pixels)

    tokenizer = tokenizer if tokenizer is not None else get_tokenizer(task)
    max_length = info.max_length if max_length is None else max_length
    ids = datasets.List(datasets.Value("int32"))
    mask = datasets.List(datasets.Value("int8"))
    if info.input_kind == "pair":
        ids, mask = datasets.List(ids), datasets.List(mask)
    features = datasets.Features(
        {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": dataset.features["label"],
            "num_truncated": datasets.Value("int8"),
        }
    )
    encoded = dataset.map(
        functools.partial(
            _encode_text_batch,
            tokenizer=tokenizer,
            columns=TASK_SPECS[task].text_columns,
            max_length=max_length,
            truncation=truncation,
        ),
        batched=True,
        remove_columns=dataset.column_names,
        features=features,
        num_proc=num_proc,
        desc=f"Tokenizing {task}",
    )
    num_truncated = int(np.sum(encoded.with_format("numpy")["num_truncated"]))
    if num_truncated:
        unit = "documents" if info.input_kind == "pair" else "sequences"
        logger.warning(
            "%s %s: truncated %d of %d %s to max_length=%d tokens",
            task,
            dataset.split or "split",
            num_truncated,
            len(encoded) * len(TASK_SPECS[task].text_columns),
            unit,
            max_length,
        )
    return encoded.remove_columns("num_truncated")


def encode(
    task: str,
    dataset: datasets.Dataset | datasets.DatasetDict,
    max_length: int | None = None,
    *,
    tokenizer: PreTrainedTokenizerFast | None = None,
    truncation: bool = True,
    num_proc: int | None = None,
    pixels_as: Literal["values", "ids"] = "values",
    pixel_pool_size: int = 1,
) -> datasets.Dataset | datasets.DatasetDict:
    """Turn an LRA split (or all splits) from `lra.load_lra` into model inputs.

    * `listops`, `text`: `input_ids` (int32, ending in `<eos>`), `attention_mask` and
      `labels`. Sequences are not padded: `LRADataCollator` pads each batch.
    * `retrieval`: `input_ids` and `attention_mask` shaped `(2, length)` per example, the two
      documents padded to the longer one; the collator pads the last axis across the batch.
    * `image`, `pathfinder`, `pathx`, `smnist`, `pmnist`: `pixel_values` (float32 in
      [0, 1], computed from the stored uint8 when rows are read; keep `Trainer`'s column removal
      happy: nothing else is needed) and `labels`; with `pixels_as="ids"`, `input_ids` (the intensities 0..255 as
      token ids, vocabulary 256) instead.

    Args:
        task: the task the data belongs to.
        dataset: a `Dataset` or `DatasetDict` as returned by `lra.load_lra`.
        max_length: tokens per sequence (per document for `retrieval`), `<eos>` included.
            Defaults to `task_info`'s `max_length`: 2048, 4096, 4000. Ignored for pixels.
        tokenizer: defaults to `get_tokenizer` of the task.
        truncation: cut longer sequences to `max_length` (LRA's convention; how many were cut is
            logged as a warning). With `False` a longer sequence raises `ValueError`.
        num_proc: processes for the tokenization.
        pixels_as: `"values"` (float `pixel_values`) or `"ids"` (`input_ids`), pixel tasks only.
        pixel_pool_size: pixel tasks only: average every `k x k` block of the square image (the mean rounded half
            up, as the image processor of `pixel_pool_processor_settings` does it), e.g. 2: 28x28 -> 14x14,
            784 -> 196 pixels. pMNIST is pooled in image order, then ordered by `pmnist_permutation(196)`.
    """
    if pixels_as not in ("values", "ids"):
        raise ValueError(f"pixels_as must be 'values' or 'ids', got {pixels_as!r}")
    if isinstance(pixel_pool_size, bool) or not isinstance(pixel_pool_size, int) or pixel_pool_size < 1:
        raise ValueError(f"pixel_pool_size must be an integer >= 1, got {pixel_pool_size!r}")
    if pixel_pool_size > 1 and task_info(task).input_kind != "pixels":
        raise ValueError(f"pixel_pool_size={pixel_pool_size} applies to pixel tasks only, not {task!r}")
    kwargs = dict(
        max_length=max_length,
        tokenizer=tokenizer,
        truncation=truncation,
        num_proc=num_proc,
        pixels_as=pixels_as,
        pixel_pool_size=pixel_pool_size,
    )
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict({split: _encode_split(task, part, **kwargs) for split, part in dataset.items()})
    return _encode_split(task, dataset, **kwargs)


# ---------------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LRADataCollator:
    """Batch examples from `encode` into tensors, padding `input_ids` / `attention_mask`.

    Sequences are padded on their last axis to the longest in the batch (rounded up to
    `pad_to_multiple_of`), so the same collator serves single sequences `(batch, length)`,
    document pairs `(batch, 2, length)` and fixed-length pixels. `labels` and `input_ids`
    become int64, `attention_mask` int64, `pixel_values` float32.
    """

    pad_token_id: int = PAD_TOKEN_ID
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch  # deferred: `import lra` must not need torch

        batch = {}
        for key in features[0]:
            values = [np.asarray(feature[key]) for feature in features]
            if key in ("input_ids", "attention_mask"):
                padding = self.pad_token_id if key == "input_ids" else 0
                batch[key] = torch.from_numpy(self._pad(values, padding).astype(np.int64))
            elif key == "pixel_values":
                batch[key] = torch.from_numpy(np.stack(values).astype(np.float32))
            elif key == "labels":
                batch[key] = torch.from_numpy(np.stack(values).astype(np.int64))
            else:
                batch[key] = torch.as_tensor(np.stack(values))
        return batch

    def _pad(self, values: Sequence[np.ndarray], padding: int) -> np.ndarray:
        length = max(value.shape[-1] for value in values)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        out = np.full((len(values), *values[0].shape[:-1], length), padding, dtype=np.int64)
        for row, value in zip(out, values):
            row[..., : value.shape[-1]] = value
        return out
