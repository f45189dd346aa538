"""LaSImageProcessor and LaSForImageClassification: images in, the data set's pixel values out, the Hub way."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

import lra
from configuration_las import LaSConfig
from image_processing_las import LaSImageProcessor, image_to_grayscale, open_image, rgb_to_grayscale
from modeling_las import LaSForImageClassification, LaSForSequenceClassification
from tests.support.models import run_where_package_is_not_installed
from tests.utils import CIFAR10_NAMES, cifar_images, make_image_release


def pixel_checkpoint(folder: Path, side: int = 32) -> LaSForSequenceClassification:
    """A tiny CIFAR-10 pixel model saved as run_lra saves one: model, remote code and image processor."""
    torch.manual_seed(0)
    config = LaSConfig(
        input_type="pixels",
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=side * side,
        pad_token_id=None,
        num_labels=len(CIFAR10_NAMES),
        id2label=dict(enumerate(CIFAR10_NAMES)),
        label2id={name: i for i, name in enumerate(CIFAR10_NAMES)},
    )
    model = LaSForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    LaSImageProcessor(size={"height": side, "width": side}).save_pretrained(folder)
    return model


def dataset_scores(model, tmp_path: Path) -> tuple[list[float], Path]:
    """The class probabilities of the first CIFAR test row as `lra` gives it, and that image as a PNG."""
    data = lra.load_lra("image", make_image_release(tmp_path / "cifar"), cache_dir=tmp_path / "cache")
    row = lra.encode("image", data["test"])[0]
    with torch.no_grad():
        logits = model(pixel_values=torch.as_tensor(row["pixel_values"])[None]).logits
    images, labels = cifar_images("test_batch")
    assert labels[0] == row["labels"]
    images[0].save(tmp_path / "test_0.png")
    return logits.softmax(-1)[0].tolist(), tmp_path / "test_0.png"


def pipeline_scores(predictions: list[dict]) -> list[float]:
    by_label = {prediction["label"]: prediction["score"] for prediction in predictions}
    return [by_label[name] for name in CIFAR10_NAMES]


def test_pipeline_on_a_png_gives_the_dataset_row_prediction(tmp_path: Path) -> None:
    model = pixel_checkpoint(tmp_path / "checkpoint")
    expected, png = dataset_scores(model, tmp_path)
    classifier = pipeline("image-classification", model=str(tmp_path / "checkpoint"), device="cpu")
    assert type(classifier.model) is LaSForImageClassification
    assert classifier.model.main_input_name == "pixel_values"
    predictions = classifier(str(png), top_k=len(CIFAR10_NAMES))
    assert predictions[0]["label"] == CIFAR10_NAMES[int(np.argmax(expected))]
    assert pipeline_scores(predictions) == pytest.approx(expected, abs=1e-6)


REMOTE_PIPELINE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockOurPackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"modeling_las", "configuration_las", "image_processing_las", "lra"}:
                raise ImportError(f"{name} is not installed here")
            return None

    sys.meta_path.insert(0, BlockOurPackage())
    from transformers import pipeline
    folder, png = sys.argv[1], sys.argv[2]
    classifier = pipeline("image-classification", model=folder, trust_remote_code=True, device="cpu")
    print(json.dumps({
        "predictions": classifier(png, top_k=10),
        "model": type(classifier.model).__module__,
        "processor": type(classifier.image_processor).__module__,
    }))
    """
)


@pytest.mark.slow  # a clean interpreter
def test_pipeline_through_remote_code_where_the_package_is_not_installed(tmp_path: Path) -> None:
    model = pixel_checkpoint(tmp_path / "checkpoint")
    expected, png = dataset_scores(model, tmp_path)
    report = run_where_package_is_not_installed(tmp_path, REMOTE_PIPELINE_SCRIPT, tmp_path / "checkpoint", png)
    assert report["model"].startswith("transformers_modules") and report["processor"].startswith(
        "transformers_modules"
    )
    assert pipeline_scores(report["predictions"]) == pytest.approx(expected, abs=1e-6)


def test_auto_classes_load_a_pixel_checkpoint(tmp_path: Path) -> None:
    pixel_checkpoint(tmp_path / "checkpoint", side=8)
    processor = AutoImageProcessor.from_pretrained(tmp_path / "checkpoint")
    assert type(processor) is LaSImageProcessor and processor.size == {"height": 8, "width": 8}
    assert type(AutoModelForImageClassification.from_pretrained(tmp_path / "checkpoint")) is LaSForImageClassification
    auto_map = json.loads((tmp_path / "checkpoint/config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForImageClassification"] == "modeling_las.LaSForImageClassification"
    assert json.loads((tmp_path / "checkpoint/preprocessor_config.json").read_text())["auto_map"] == {
        "AutoImageProcessor": "image_processing_las.LaSImageProcessor"
    }
    with pytest.raises(ValueError, match="needs a pixel model"):
        LaSForImageClassification(LaSConfig(hidden_size=16, num_attention_heads=2))


def test_every_input_kind_gives_the_builders_grayscale() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    # The CIFAR builder's rule, written out: round half up of the BT.601 luma.
    expected = np.floor(rgb.astype(np.float64) @ [0.299, 0.587, 0.114] + 0.5 + 1e-9).astype(np.uint8)
    assert np.array_equal(rgb_to_grayscale(rgb), expected)
    processor = LaSImageProcessor(size={"height": 6, "width": 5})
    channels_first = {"input_data_format": "channels_first"}
    inputs = [
        (Image.fromarray(rgb), {}),
        (Image.fromarray(rgb).convert("RGBA"), {}),
        (rgb, {}),
        (torch.from_numpy(rgb).permute(2, 0, 1), channels_first),
        (torch.from_numpy(rgb).permute(2, 0, 1).float() / 255, channels_first),
    ]
    for image, kwargs in inputs:
        values = processor(image, return_tensors="pt", **kwargs)["pixel_values"]
        assert values.dtype == torch.float32 and values.shape == (1, 30)
        assert torch.equal(values, torch.from_numpy(expected.reshape(1, -1) / np.float32(255.0)))
    gray = Image.fromarray(expected)
    assert np.array_equal(image_to_grayscale(gray), expected)  # an 8-bit grayscale image is kept as it is
    assert processor([gray, gray])["pixel_values"].shape == (2, 30)


def test_an_image_url_is_read_with_the_standard_library(tmp_path: Path) -> None:
    # The pipeline's URL inputs go through urllib (remote code may import nothing beyond torch and transformers); a
    # loopback server started here serves the PNG.
    import functools
    import http.server
    import threading

    rgb = np.random.default_rng(1).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "picture.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/picture.png"
        image = open_image(url, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert np.array_equal(image_to_grayscale(image), rgb_to_grayscale(rgb))


def test_wrong_sizes_and_values_are_named() -> None:
    processor = LaSImageProcessor(size={"height": 32, "width": 32})
    with pytest.raises(ValueError, match=r"Image 0 is 16x8 \(width x height\) but this model reads 32x32 images"):
        processor(np.zeros((8, 16), dtype=np.uint8))
    resized = processor(np.full((8, 16), 200, dtype=np.uint8), do_resize=True)["pixel_values"]
    assert resized.shape == (1, 1024) and np.allclose(resized, 200 / 255)
    with pytest.raises(ValueError, match=r"float image must hold values in \[0, 1\]"):
        processor(np.full((32, 32), 3.0))
    with pytest.raises(ValueError, match="8-bit values in 0..255"):
        processor(np.full((32, 32), 300))
    with pytest.raises(ValueError, match="more than 8 bits"):
        processor(Image.new("I;16", (32, 32)))
    with pytest.raises(ValueError, match="channel axis"):
        processor(np.zeros((32, 32, 7), dtype=np.uint8))


def test_a_stack_of_grayscale_images_is_not_read_as_one_color_image() -> None:
    # (3, H, W) is one RGB image channels first, or three grayscale images: never guessed.
    stack = np.random.default_rng(2).integers(0, 256, size=(3, 8, 8), dtype=np.uint8)
    processor = LaSImageProcessor(size={"height": 8, "width": 8})
    for ambiguous in (stack, torch.from_numpy(stack), np.concatenate([stack, stack[:1]])):
        with pytest.raises(ValueError, match=r"is ambiguous: one RGBA? image channels first, or a stack of [34] gray"):
            processor(ambiguous)
    as_list = processor(list(stack))["pixel_values"]
    assert np.array_equal(as_list, stack.reshape(3, -1) / np.float32(255.0))
    assert np.array_equal(processor(stack[:, :, :, None])["pixel_values"], as_list)  # a 4-D batch (N, H, W, 1)
    as_rgb = processor(stack, input_data_format="channels_first")["pixel_values"]
    assert np.array_equal(as_rgb, rgb_to_grayscale(stack, 0).reshape(1, -1) / np.float32(255.0))
    assert processor(stack[:1])["pixel_values"].shape == (1, 64)  # one channel first: one grayscale image either way


def _wide_png(path: Path, side: int = 32) -> Path:
    """An all-white 16-bit grayscale PNG (8-bit clipping would make it a plausible white image)."""
    Image.fromarray(np.full((side, side), 65535, dtype=np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode in ("I;16", "I")
    return path


def _refuse_decoding(monkeypatch) -> None:
    """Make any decoding of an image file's pixels a test failure."""
    from PIL import ImageFile

    def no_decoding(self, *args, **kwargs):
        raise AssertionError(f"{self.size[0]}x{self.size[1]} pixels decoded before the image was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)


def test_files_are_checked_from_their_header_before_decoding(tmp_path: Path, monkeypatch) -> None:
    huge = tmp_path / "huge.png"
    Image.new("L", (6000, 6000)).save(huge, compress_level=1)
    processor = LaSImageProcessor(size={"height": 32, "width": 32}, do_resize=True)
    wrong_size = tmp_path / "wrong.png"
    Image.new("L", (40, 30)).save(wrong_size)
    wide = _wide_png(tmp_path / "wide.png")
    _refuse_decoding(monkeypatch)
    with pytest.raises(ValueError, match=r"6000x6000 \(width x height\), 36000000 pixels, more than max_image_pix"):
        processor(Image.open(huge))
    with pytest.raises(ValueError, match="refused before decoding"):
        processor.open_checked_image(str(huge))
    with pytest.raises(ValueError, match="more than 8 bits per pixel"):
        processor(Image.open(wide))
    with pytest.raises(ValueError, match=r"is 40x30 \(width x height\) but this model reads 32x32"):
        LaSImageProcessor(size={"height": 32, "width": 32})(Image.open(wrong_size))
    with pytest.raises(
        ValueError, match=r"Image 0 is 30x20 \(width x height\), 600 pixels, more than max_image_pixels=500"
    ):
        LaSImageProcessor(max_image_pixels=500)(np.zeros((20, 30), dtype=np.uint8))
    with pytest.raises(ValueError, match="max_image_pixels=0 must be a positive integer"):
        LaSImageProcessor(max_image_pixels=0)


def test_pipeline_checks_files_before_decoding_them(tmp_path: Path, monkeypatch) -> None:
    # transformers' own loader decodes the whole file and clips it to 8-bit RGB before any processor sees it: a
    # 16-bit white image was classified, and a 6000x6000 image refused only after 1.4 GB.
    pixel_checkpoint(tmp_path / "checkpoint")
    classifier = pipeline("image-classification", model=str(tmp_path / "checkpoint"), device="cpu")
    wide = _wide_png(tmp_path / "wide.png")
    huge = tmp_path / "huge.png"
    Image.new("L", (6000, 6000)).save(huge, compress_level=1)
    with pytest.raises(ValueError, match="more than 8 bits per pixel"):
        classifier(str(wide))
    _refuse_decoding(monkeypatch)
    with pytest.raises(ValueError, match="more than max_image_pixels"):
        classifier(str(huge))
    with pytest.raises(ValueError, match="more than 8 bits per pixel"):
        classifier(Image.open(wide))


def test_the_pipeline_of_other_models_is_unchanged(tmp_path: Path) -> None:
    # Our pipeline class serves every "image-classification" pipeline once modeling_las is imported: other models'
    # images go through transformers' own loading, 16-bit files included.
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    from transformers.pipelines import ImageClassificationPipeline

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=8, patch_size=4, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8
    )
    model = ViTForImageClassification(config).eval()
    processor = ViTImageProcessor(size={"height": 8, "width": 8})
    classifier = pipeline("image-classification", model=model, image_processor=processor, device="cpu")
    assert isinstance(classifier, ImageClassificationPipeline)
    wide = _wide_png(tmp_path / "wide.png", side=8)
    got = classifier(str(wide), top_k=2)
    with torch.no_grad():
        from transformers.image_utils import load_image

        logits = model(**processor(load_image(str(wide)), return_tensors="pt")).logits
    assert got[0]["score"] == pytest.approx(logits.softmax(-1).max().item(), abs=1e-6)


def test_pipeline_loads_a_local_checkpoint_without_a_remote_code_prompt(tmp_path: Path, monkeypatch) -> None:
    # With our package imported, nothing in the checkpoint is remote code: no y/N prompt (15 s where nobody answers).
    pixel_checkpoint(tmp_path / "checkpoint")
    prompts = []
    monkeypatch.setattr("builtins.input", lambda prompt="": prompts.append(prompt) or "n")
    classifier = pipeline("image-classification", model=str(tmp_path / "checkpoint"), device="cpu")
    assert prompts == []
    assert type(classifier.model) is LaSForImageClassification
    assert type(classifier.image_processor) is LaSImageProcessor


def test_pathfinder_reads_an_rgb_png_with_the_same_rule(tmp_path: Path) -> None:
    from tests.utils import make_pathfinder_release

    archive = make_pathfinder_release(tmp_path)
    rgb = np.random.default_rng(1).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/0/sample_0.png")
    data = lra.load_lra("pathfinder", archive, cache_dir=tmp_path / "cache")
    assert data["train"][0]["pixels"] == rgb_to_grayscale(rgb).reshape(-1).tolist()


def test_pixel_order_gives_the_pmnist_sequence():
    # A pMNIST checkpoint's processor reads a plain 28x28 image and gives the permuted sequence the model trained on.
    import lra

    image = np.random.default_rng(0).integers(0, 256, size=(28, 28), dtype=np.uint8)
    order = lra.pmnist_permutation()
    processor = LaSImageProcessor(size={"height": 28, "width": 28}, pixel_order=order.tolist())
    got = processor(image, return_tensors="np")["pixel_values"][0]
    np.testing.assert_array_equal(got, image.reshape(-1)[order].astype(np.float32) / 255)
    with pytest.raises(ValueError, match="permutation"):
        LaSImageProcessor(pixel_order=[0, 0, 1])
    with pytest.raises(ValueError, match="reorders 3 pixels"):
        LaSImageProcessor(pixel_order=[2, 0, 1])(image)
