# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Image processor of LaS pixel models (LRA Image, Pathfinder, Path-X): images in, `pixel_values` out.

A LaS pixel model reads one grayscale value per position, row-major, scaled to [0, 1]. The rules that turn an image
into that sequence live here, once, and the `lra` builders use the same functions: a PNG given to
`pipeline("image-classification")` gives exactly the values of the matching data set row.

* Grayscale is the luma `0.299 R + 0.587 G + 0.114 B` rounded to the nearest integer, halves up, computed exactly in
  integers: `(299 R + 587 G + 114 B + 500) // 1000` (`rgb_to_grayscale`). An 8-bit grayscale image is kept as it is
  (its luma as RGB is itself). Alpha is dropped, palette images are expanded first.
* Size: the processor expects the size the model was trained on (the builders reject other sizes too); with
  `do_resize=True` a grayscale image of another size is resized with Pillow (`resample`, bilinear by default).
* Scale: `pixel_values = uint8 / 255` in float32 (`scale_pixels`, also used by `lra.encode`).

This file is self-contained on purpose: `save_pretrained` copies it beside the checkpoint, so that
`AutoImageProcessor.from_pretrained(..., trust_remote_code=True)` works where this package is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

#: Weights of R, G and B in the luma, per mille (ITU-R BT.601).
GRAYSCALE_WEIGHTS: tuple[int, int, int] = (299, 587, 114)
#: Pillow modes with more than 8 bits per channel: converting them to 8 bits would clip silently.
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def rgb_to_grayscale(rgb: np.ndarray, channel_axis: int = -1) -> np.ndarray:
    """Luma of 8-bit RGB pixels, as uint8: `(299 R + 587 G + 114 B + 500) // 1000`, exact in integers.

    `channel_axis` holds R, G, B (further channels, such as alpha, are ignored); the result has the other axes. The
    CIFAR-10 batches (`n x 3072`: the R, G and B planes) are `rgb_to_grayscale(rows.reshape(n, 3, -1), 1)`.
    """
    channels = np.moveaxis(np.asarray(rgb), channel_axis, 0).astype(np.uint32)
    red, green, blue = GRAYSCALE_WEIGHTS
    luma = (red * channels[0] + green * channels[1] + blue * channels[2] + 500) // 1000
    return luma.astype(np.uint8)


def _pil_to_grayscale(image: PIL.Image.Image) -> np.ndarray:
    if image.mode == "L":
        return np.asarray(image, dtype=np.uint8)
    if image.mode == "1":
        return np.asarray(image.convert("L"), dtype=np.uint8)
    if image.mode in _WIDE_MODES:
        raise ValueError(f"Image mode {image.mode!r} has more than 8 bits per pixel; convert it to 8 bits (L or RGB).")
    try:
        rgb = image.convert("RGB")  # palette, alpha, CMYK, YCbCr, ...: to 8-bit RGB first
    except ValueError as error:
        raise ValueError(f"Image mode {image.mode!r} cannot be converted to RGB: {error}") from None
    return rgb_to_grayscale(np.asarray(rgb))


def _array_to_uint8(array: np.ndarray) -> np.ndarray:
    """Integers in 0..255 as they are; floats in [0, 1] (as torchvision's `ToTensor` gives) times 255, rounded."""
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not (np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0):
            raise ValueError(
                f"A float image must hold values in [0, 1]; found values in [{array.min()}, {array.max()}]."
            )
        return np.rint(array * 255.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.bool_):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"An integer image must hold 8-bit values in 0..255; found values in [{array.min()}, {array.max()}]."
            )
        return array.astype(np.uint8)
    raise ValueError(f"An image array must hold integers in 0..255 or floats in [0, 1]; got dtype {array.dtype}.")


def _array_to_grayscale(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4 (channels last wins when both could be channels)."""
    array = _array_to_uint8(array)
    if array.ndim == 2:
        return array
    if array.ndim == 3:
        if array.shape[-1] in (1, 3, 4):
            channel_axis = -1
        elif array.shape[0] in (1, 3, 4):
            channel_axis = 0
        else:
            raise ValueError(
                f"Cannot tell the channel axis of an image shaped {array.shape}: expected 1, 3 or 4 "
                "channels first or last."
            )
        if array.shape[channel_axis] == 1:
            return np.take(array, 0, axis=channel_axis)
        return rgb_to_grayscale(array, channel_axis)
    raise ValueError(f"An image array must be shaped (H, W), (H, W, C) or (C, H, W); got {array.shape}.")


def image_to_grayscale(image: PIL.Image.Image | np.ndarray | torch.Tensor) -> np.ndarray:
    """One image (Pillow, numpy or torch) as a 2-D uint8 array of luma values (see the module doc for the rules)."""
    if isinstance(image, PIL.Image.Image):
        return _pil_to_grayscale(image)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        return _array_to_grayscale(image)
    raise ValueError(f"An image must be a PIL.Image, a numpy array or a torch tensor; got {type(image).__name__}.")


def scale_pixels(pixels: np.ndarray | Sequence[Any]) -> np.ndarray:
    """uint8 pixels as the float32 `pixel_values` a LaS pixel model reads: `pixels / 255`."""
    return np.asarray(pixels, dtype=np.float32) / 255.0


def _size_dict(size: dict[str, int] | int | Sequence[int] | None) -> dict[str, int] | None:
    """`{"height": h, "width": w}` from that dict, one int (a square) or `(height, width)`; None means any size."""
    if size is None:
        return None
    if isinstance(size, dict):
        height, width = size.get("height"), size.get("width")
    elif isinstance(size, int):
        height = width = size
    else:
        height, width = tuple(size) if len(size) == 2 else (None, None)
    if not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in (height, width)):
        raise ValueError(
            f"size must be {{'height': h, 'width': w}} with positive integers (or one int); got {size!r}."
        )
    return {"height": height, "width": width}


class LaSImageProcessor(BaseImageProcessor):
    r"""
    Turns images into the `pixel_values` of a LaS pixel model: grayscale (exact integer luma), row-major, scaled to
    [0, 1] in float32, shaped `(batch, height * width)`.

    Args:
        size (`dict[str, int]`, *optional*):
            `{"height": h, "width": w}` of the images the model was trained on (32x32 for LRA Image and Pathfinder,
            128x128 for Path-X). An image of another size is an error unless `do_resize` is set; `None` accepts any
            size.
        do_resize (`bool`, *optional*, defaults to `False`):
            Resize images of another size to `size` (after the grayscale conversion) instead of raising.
        resample (`int`, *optional*, defaults to `PIL.Image.Resampling.BILINEAR`):
            The Pillow filter used by `do_resize`.
        pixel_order (`list[int]`, *optional*):
            A fixed reordering of the flattened pixels: position `i` of `pixel_values` holds pixel `pixel_order[i]` of
            the row-major image (pMNIST's permutation). Saved with the processor, so a permuted-pixel checkpoint
            reads plain images.

    Accepts one image or a list of them: `PIL.Image`, numpy arrays or torch tensors shaped `(H, W)`, `(H, W, C)` or
    `(C, H, W)` (8-bit integers, or floats in [0, 1]), or a 4-D batch of them.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: dict[str, int] | None = None,
        do_resize: bool = False,
        resample: int = PIL.Image.Resampling.BILINEAR,
        pixel_order: Sequence[int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.size = _size_dict(size)
        self.do_resize = bool(do_resize)
        self.resample = int(resample)
        self.pixel_order = None if pixel_order is None else [int(i) for i in pixel_order]
        if self.pixel_order is not None and sorted(self.pixel_order) != list(range(len(self.pixel_order))):
            raise ValueError("pixel_order must be a permutation of 0 .. n-1 (each pixel position exactly once).")

    def preprocess(
        self,
        images: Any,
        do_resize: bool | None = None,
        size: dict[str, int] | None = None,
        resample: int | None = None,
        return_tensors: str | None = None,
    ) -> BatchFeature:
        """Grayscale, check or resize, flatten and scale `images`; `return_tensors` "pt" or "np" (default numpy)."""
        do_resize = self.do_resize if do_resize is None else do_resize
        size = self.size if size is None else _size_dict(size)
        resample = self.resample if resample is None else resample
        rows = []
        for index, image in enumerate(_image_list(images)):
            pixels = self._fit(image_to_grayscale(image), index, size, do_resize, resample)
            rows.append(pixels.reshape(-1))
        if len({len(row) for row in rows}) > 1:
            raise ValueError("The images have different sizes: give a size (or do_resize=True) to batch them.")
        pixels = np.stack(rows)
        if self.pixel_order is not None:
            if pixels.shape[1] != len(self.pixel_order):
                raise ValueError(
                    f"pixel_order reorders {len(self.pixel_order)} pixels but the images have {pixels.shape[1]}."
                )
            pixels = pixels[:, self.pixel_order]
        return BatchFeature(data={"pixel_values": scale_pixels(pixels)}, tensor_type=return_tensors)

    @staticmethod
    def _fit(gray: np.ndarray, index: int, size: dict[str, int] | None, do_resize: bool, resample: int) -> np.ndarray:
        """The grayscale image at `size`: as it is, resized (`do_resize`), or an error naming both sizes."""
        if size is None or gray.shape == (size["height"], size["width"]):
            return gray
        if not do_resize:
            raise ValueError(
                f"Image {index} is {gray.shape[1]}x{gray.shape[0]} (width x height) but this model reads "
                f"{size['width']}x{size['height']} images; resize it, or pass do_resize=True."
            )
        image = PIL.Image.fromarray(gray)
        factor = gray.shape[0] // size["height"]
        if resample == PIL.Image.Resampling.BOX and gray.shape == (size["height"] * factor, size["width"] * factor):
            # A box filter by a whole factor is the mean of each block: `reduce` computes it exactly (rounded half
            # up), where `resize` is off by one level at times. `lra.encode(..., pixel_pool_size=k)` pools the same.
            return np.asarray(image.reduce(factor), dtype=np.uint8)
        return np.asarray(image.resize((size["width"], size["height"]), resample=resample), dtype=np.uint8)


def _image_list(images: Any) -> list[Any]:
    """One image or a batch (a list, or a 4-D array / tensor) as a non-empty list of images."""
    if isinstance(images, (list, tuple)):
        batch = list(images)
    elif isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
        batch = list(images)
    else:
        batch = [images]
    if not batch:
        raise ValueError("No images given.")
    return batch


__all__ = ["GRAYSCALE_WEIGHTS", "LaSImageProcessor", "image_to_grayscale", "rgb_to_grayscale", "scale_pixels"]
