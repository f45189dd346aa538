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
* Arrays and tensors: `(H, W)`, `(H, W, C)` or `(C, H, W)` with C in 1, 3, 4. A `(3 | 4, H, W)` array is ambiguous (one
  RGB(A) image channels first, or a stack of 3 or 4 grayscale images) and is refused unless `input_data_format` says
  which; a stack of images is a list or a 4-D array.
* Files are checked before they are decoded: an image larger than `max_image_pixels`, of another size than the model's
  (without `do_resize`), or with more than 8 bits per channel (16-bit PNG) is refused from its header, before any pixel
  is read. `pipeline("image-classification")` runs these checks too (`LaSImageClassificationPipeline`): transformers'
  own loader would decode the whole file and clip it to 8-bit RGB before the processor sees it.

This file is self-contained on purpose: `save_pretrained` copies it beside the checkpoint, so that
`AutoImageProcessor.from_pretrained(..., trust_remote_code=True)` works where this package is not installed. Pillow is
imported on first use only (`_pillow`): a text model's remote code imports this file and must load without Pillow.
"""

from __future__ import annotations

import base64
import importlib
import io
import os
import sys
import urllib.request
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.pipelines.image_classification import ImageClassificationPipeline

if TYPE_CHECKING:
    try:  # in a `try` block, which transformers' remote-code import check skips (see `_pillow`)
        import PIL.Image
    except ImportError:
        pass

#: Weights of R, G and B in the luma, per mille (ITU-R BT.601).
GRAYSCALE_WEIGHTS: tuple[int, int, int] = (299, 587, 114)
#: Pillow modes with more than 8 bits per channel: converting them to 8 bits would clip silently.
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: `PIL.Image.Resampling.BILINEAR`, written out so that the default needs no Pillow at import.
_BILINEAR = 2
#: The largest image (width x height) the processor decodes by default: 4096 x 4096.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
#: `input_data_format` values (transformers' `ChannelDimension` values).
_CHANNEL_FORMATS = ("channels_first", "channels_last")


def _pillow(module: str = "Image") -> ModuleType:
    """A Pillow module (`PIL.Image`, `PIL.ImageOps`), imported on first use.

    transformers' remote-code check refuses a shipped file that imports a missing package outside a `try` block, even
    inside a function; a text model's checkpoint ships this file and must load where Pillow is not installed.
    """
    try:
        return importlib.import_module(f"PIL.{module}")
    except ImportError as error:
        raise ImportError("Reading images needs Pillow (`pip install Pillow`), which is not installed.") from error


def _is_pil_image(image: Any) -> bool:
    # Without importing Pillow: an object cannot be a Pillow image unless Pillow was imported to make it.
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(image, module.Image)


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


def _channel_axis(shape: tuple[int, ...], input_data_format: str | None) -> int:
    """The channel axis of a 3-D image: given by `input_data_format`, or the only axis that can be one.

    Channels last (`(H, W, C)`, as Pillow and numpy) when the last axis holds 1, 3 or 4 values. A first axis of 1 is a
    single grayscale image either way. A first axis of 3 or 4 is ambiguous: one RGB(A) image channels first, or a stack
    of 3 or 4 grayscale images; reading a stack as one color image would silently mix the images into one luma.
    """
    if input_data_format is not None:
        axis = 0 if input_data_format == "channels_first" else -1
        if shape[axis] not in (1, 3, 4):
            raise ValueError(
                f"An image shaped {shape} has {shape[axis]} values on its channel axis ({input_data_format}); "
                "expected 1, 3 or 4."
            )
        return axis
    if shape[-1] in (1, 3, 4):
        return -1
    if shape[0] == 1:
        return 0
    if shape[0] in (3, 4):
        raise ValueError(
            f"An image shaped {shape} is ambiguous: one {'RGB' if shape[0] == 3 else 'RGBA'} image channels first, or "
            f"a stack of {shape[0]} grayscale images. Pass input_data_format='channels_first' for one color image, or "
            "a list (or a 4-D array) of images for several."
        )
    raise ValueError(
        f"Cannot tell the channel axis of an image shaped {shape}: expected 1, 3 or 4 channels first or last."
    )


def _array_to_grayscale(array: np.ndarray, input_data_format: str | None = None) -> np.ndarray:
    """(H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4 (see `_channel_axis` for the channel-first rule)."""
    array = _array_to_uint8(array)
    if array.ndim == 2:
        return array
    if array.ndim == 3:
        channel_axis = _channel_axis(array.shape, input_data_format)
        if array.shape[channel_axis] == 1:
            return np.take(array, 0, axis=channel_axis)
        return rgb_to_grayscale(array, channel_axis)
    raise ValueError(f"An image array must be shaped (H, W), (H, W, C) or (C, H, W); got {array.shape}.")


def image_to_grayscale(
    image: PIL.Image.Image | np.ndarray | torch.Tensor, input_data_format: str | None = None
) -> np.ndarray:
    """One image (Pillow, numpy or torch) as a 2-D uint8 array of luma values (see the module doc for the rules).

    `input_data_format` (`"channels_first"` / `"channels_last"`) names the channel axis of a 3-D array or tensor.
    """
    if input_data_format is not None and input_data_format not in _CHANNEL_FORMATS:
        raise ValueError(f"input_data_format={input_data_format!r} is not one of {', '.join(_CHANNEL_FORMATS)}.")
    if _is_pil_image(image):
        return _pil_to_grayscale(image)
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        return _array_to_grayscale(image, input_data_format)
    raise ValueError(f"An image must be a PIL.Image, a numpy array or a torch tensor; got {type(image).__name__}.")


def check_image_header(
    width: int,
    height: int,
    mode: str,
    size: dict[str, int] | None,
    do_resize: bool,
    max_image_pixels: int | None,
    name: str = "Image",
) -> None:
    """Refuse an image from what its header says, before its pixels are decoded (see `LaSImageProcessor`)."""
    if max_image_pixels is not None and width * height > max_image_pixels:
        raise ValueError(
            f"{name} is {width}x{height} (width x height), {width * height} pixels, more than max_image_pixels="
            f"{max_image_pixels}; it is refused before decoding. Resize it first, or raise max_image_pixels."
        )
    if size is not None and not do_resize and (height, width) != (size["height"], size["width"]):
        raise ValueError(
            f"{name} is {width}x{height} (width x height) but this model reads {size['width']}x{size['height']} "
            "images; resize it, or pass do_resize=True."
        )
    if mode in _WIDE_MODES:
        raise ValueError(f"{name} has mode {mode!r}, more than 8 bits per pixel; convert it to 8 bits (L or RGB).")


def open_image(source: Any, timeout: float | None = None) -> PIL.Image.Image:
    """A Pillow image opened lazily (header read, pixels not decoded yet) from a path, an http(s) URL, bytes, a
    base64 string or an open Pillow image; EXIF orientation is applied when it is decoded (`_decoded`)."""
    image_module = _pillow()
    if _is_pil_image(source):
        return source
    if isinstance(source, bytes):
        return image_module.open(io.BytesIO(source))
    if isinstance(source, os.PathLike) or (isinstance(source, str) and os.path.isfile(source)):
        return image_module.open(source)
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        # The standard library's client (redirects followed): Hub remote code may import nothing beyond torch and
        # transformers, and huggingface_hub's own HTTP client has changed packages before.
        with urllib.request.urlopen(source, timeout=timeout) as response:
            return image_module.open(io.BytesIO(response.read()))
    if isinstance(source, str):
        try:
            return image_module.open(io.BytesIO(base64.b64decode(source.split(",")[-1], validate=True)))
        except Exception as error:
            raise ValueError(
                f"{source[:80]!r} is neither an existing file, an http(s) URL nor a base64 image "
                f"({type(error).__name__}: {error})."
            ) from None
    raise ValueError(f"An image source must be a path, a URL, bytes or a PIL.Image; got {type(source).__name__}.")


def _decoded(image: PIL.Image.Image) -> PIL.Image.Image:
    """The upright image (EXIF orientation applied, as transformers' `load_image` does), decoded."""
    return _pillow("ImageOps").exif_transpose(image)


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
        max_image_pixels (`int`, *optional*, defaults to 4096 * 4096):
            The largest image (width x height) accepted; a larger Pillow image or file is refused from its header,
            before it is decoded. `None`: no limit.
        pixel_order (`list[int]`, *optional*):
            A fixed reordering of the flattened pixels: position `i` of `pixel_values` holds pixel `pixel_order[i]` of
            the row-major image (pMNIST's permutation). Saved with the processor, so a permuted-pixel checkpoint
            reads plain images.

    Accepts one image or a list of them: `PIL.Image`, numpy arrays or torch tensors shaped `(H, W)`, `(H, W, C)` or
    `(C, H, W)` (8-bit integers, or floats in [0, 1]), or a 4-D batch of them. A 3-D input whose first axis is 3 or 4
    and whose last axis cannot be channels needs `input_data_format` (one color image channels first, or a stack of
    grayscale images? see the module doc).
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        size: dict[str, int] | None = None,
        do_resize: bool = False,
        resample: int = _BILINEAR,
        pixel_order: Sequence[int] | None = None,
        max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.size = _size_dict(size)
        self.do_resize = bool(do_resize)
        self.resample = int(resample)
        if max_image_pixels is not None and (not isinstance(max_image_pixels, int) or max_image_pixels < 1):
            raise ValueError(f"max_image_pixels={max_image_pixels!r} must be a positive integer or None.")
        self.max_image_pixels = max_image_pixels
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
        input_data_format: str | None = None,
    ) -> BatchFeature:
        """Grayscale, check or resize, flatten and scale `images`; `return_tensors` "pt" or "np" (default numpy).

        `input_data_format` (`"channels_first"` / `"channels_last"`): the channel axis of 3-D arrays and tensors.
        """
        do_resize = self.do_resize if do_resize is None else do_resize
        size = self.size if size is None else _size_dict(size)
        resample = self.resample if resample is None else resample
        input_data_format = (
            None if input_data_format is None else str(getattr(input_data_format, "value", input_data_format))
        )
        rows = []
        for index, image in enumerate(_image_list(images)):
            if _is_pil_image(image):
                # A lazily opened file has its header read only: refuse it before decoding its pixels.
                width, height = image.size
                check_image_header(width, height, image.mode, size, do_resize, self.max_image_pixels, f"Image {index}")
            gray = image_to_grayscale(image, input_data_format)
            if self.max_image_pixels is not None and gray.size > self.max_image_pixels:  # an array or a tensor
                height, width = gray.shape
                check_image_header(width, height, "L", None, True, self.max_image_pixels, f"Image {index}")
            pixels = self._fit(gray, index, size, do_resize, resample)
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
        image = _pillow().fromarray(gray)
        factor = gray.shape[0] // size["height"]
        if resample == _pillow().Resampling.BOX and gray.shape == (size["height"] * factor, size["width"] * factor):
            # A box filter by a whole factor is the mean of each block: `reduce` computes it exactly (rounded half
            # up), where `resize` is off by one level at times. `lra.encode(..., pixel_pool_size=k)` pools the same.
            return np.asarray(image.reduce(factor), dtype=np.uint8)
        return np.asarray(image.resize((size["width"], size["height"]), resample=resample), dtype=np.uint8)

    def open_checked_image(self, source: Any, timeout: float | None = None) -> PIL.Image.Image:
        """`source` (a path, URL, bytes, base64 string or Pillow image) opened, checked from its header
        (`check_image_header`: size, `max_image_pixels`, more than 8 bits) and only then decoded, upright."""
        image = open_image(source, timeout=timeout)
        width, height = image.size
        check_image_header(width, height, image.mode, self.size, self.do_resize, self.max_image_pixels)
        return _decoded(image)


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


class LaSImageClassificationPipeline(ImageClassificationPipeline):
    """transformers' image-classification pipeline, with LaS's checks where the image processor is a LaS one.

    transformers' own `load_image` decodes a whole file and converts it to 8-bit RGB before any processor sees it: a
    16-bit PNG would be clipped (an all-white image that still gets a label) and a huge image decoded in full before it
    is refused. With a LaS processor, files are opened lazily and checked from their header first
    (`LaSImageProcessor.open_checked_image`), then handed over in their own mode. Any other processor runs exactly as
    in the parent class. `modeling_las` installs this class for the "image-classification" task when it is imported.
    """

    def preprocess(self, image: Any, timeout: float | None = None) -> BatchFeature:
        open_checked_image = getattr(self.image_processor, "open_checked_image", None)
        if open_checked_image is None or isinstance(image, (np.ndarray, torch.Tensor)):
            return super().preprocess(image, timeout=timeout)
        model_inputs = self.image_processor(images=open_checked_image(image, timeout=timeout), return_tensors="pt")
        return model_inputs.to(self.dtype)


__all__ = [
    "GRAYSCALE_WEIGHTS",
    "LaSImageClassificationPipeline",
    "LaSImageProcessor",
    "check_image_header",
    "image_to_grayscale",
    "open_image",
    "rgb_to_grayscale",
    "scale_pixels",
]
