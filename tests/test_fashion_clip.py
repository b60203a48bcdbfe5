"""pipeline/training/clip.py: the Fashion-MNIST CLIP's captions, tokenizer, image path and loss, and a tiny training
run saved and loaded back with transformers alone; scripts/train_clip.py names a bad key before any work."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.data import ImageDataset
from pipeline.pipeline_fashion_ddpm import FASHION_MNIST_CLASSES
from pipeline.training.clip import (
    ClipTrainConfig,
    build_processor,
    build_tokenizer,
    caption,
    contrastive_loss,
    degrade,
    pixel_values,
    train_clip,
    vocabulary,
)

REPO = Path(__file__).resolve().parent.parent


def test_captions_and_a_tokenizer_that_spells_most_caption_words_whole(tmp_path):
    assert caption("Dress", ["wide", "dark"], template=1) == "a clear photo of a wide dark dress"
    assert caption("Sneaker", degraded=True, alias=1) == "a blurry photo of a trainer"
    tokenizer = build_tokenizer(tmp_path / "tok", vocabulary())
    assert tokenizer.tokenize("a good photo of a clear ankle boot") == [
        "a</w>", "good</w>", "photo</w>", "of</w>", "a</w>", "clear</w>", "ankle</w>", "boot</w>"]
    words = sorted({w for text in vocabulary() for w in text.replace("-", " ").split()})
    whole = [w for w in words if tokenizer.tokenize(w) == [w + "</w>"]]
    assert len(whole) >= 0.75 * len(words), sorted(set(words) - set(whole))
    # every text survives (CLIP's pre-tokenizer splits punctuation off), unknown words byte by byte
    for text, back in (("a photo of a patterned t-shirt", "a photo of a patterned t - shirt"), ("a zebra", "a zebra")):
        assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == back
    assert tokenizer.tokenize("zebra") == ["z", "e", "b", "r", "a</w>"]


def test_pixel_values_equal_the_processor_and_pass_gradients(tmp_path):
    from pipeline.images import to_rgb_pil

    processor = build_processor(build_tokenizer(tmp_path / "tok", vocabulary()))
    x = torch.rand(3, 1, 28, 28)
    x = (x * 255).round() / 255  # exactly representable in the PIL images the processor reads
    reference = processor(images=to_rgb_pil(x), return_tensors="pt")["pixel_values"]
    x.requires_grad_(True)
    mine = pixel_values(x, processor.image_processor)
    assert mine.shape == reference.shape == (3, 3, 28, 28) and torch.allclose(mine, reference, atol=1e-5)
    mine.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [56, 224])  # a CLIP with a larger input (224: openai/clip-vit-base-patch32's)
def test_pixel_values_resize_like_the_processor(size):
    from transformers import CLIPImageProcessor

    from pipeline.images import to_rgb_pil

    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    x = (torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).round() / 255
    reference = processor(images=to_rgb_pil(x), return_tensors="pt")["pixel_values"]
    mine = pixel_values(x.requires_grad_(True), processor)
    assert mine.shape == reference.shape == (4, 3, size, size)
    # PIL's bicubic kernel (a = -0.5, uint8 output) and torch's (a = -0.75) differ by well under 1 % of the pixel spread
    assert (mine - reference).abs().mean() < 0.01 * reference.std()
    assert torch.corrcoef(torch.stack([mine.detach().flatten(), reference.flatten()]))[0, 1] > 0.999
    mine.sum().backward()
    assert x.grad.abs().sum() > 0


def test_contrastive_loss_is_clips_when_captions_differ_and_pools_identical_ones():
    g = torch.Generator().manual_seed(0)
    images, texts, scale = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g), torch.tensor(2.0)
    logits = scale.exp() * F.normalize(images, dim=-1) @ F.normalize(texts, dim=-1).T
    clip = (F.cross_entropy(logits, torch.arange(4)) + F.cross_entropy(logits.T, torch.arange(4))) / 2
    assert torch.allclose(contrastive_loss(images, texts, torch.arange(4), scale), clip)
    # two images with one caption: the caption's target is both of them, half each
    pooled = contrastive_loss(images, texts[:3], torch.tensor([0, 0, 1, 2]), scale)
    logits = scale.exp() * F.normalize(images, dim=-1) @ F.normalize(texts[:3], dim=-1).T
    text_side = -(torch.tensor([[0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]) * logits.T.log_softmax(1)).sum(1).mean()
    assert torch.allclose(pooled, (F.cross_entropy(logits, torch.tensor([0, 0, 1, 2])) + text_side) / 2)


def test_degradations_keep_shape_and_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    for kind in ("blur", "noise", "low_contrast", "pixelate", "jpeg", "salt_pepper"):
        y = degrade(x, kind, torch.full((4,), 0.5), g)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.equal(x, y), kind
    with pytest.raises(ValueError, match="'smudge' is not one of"):
        degrade(x, "smudge", torch.zeros(4), g)


def test_tiny_clip_trains_saves_and_loads_with_transformers_alone(tmp_path):
    from transformers import CLIPModel, CLIPProcessor, CLIPTokenizerFast

    g = torch.Generator().manual_seed(0)
    data = ImageDataset(torch.randint(0, 256, (96, 28, 28), dtype=torch.uint8, generator=g), torch.arange(96) % 10,
                        list(FASHION_MNIST_CLASSES), "random")
    config = ClipTrainConfig(epochs=2, batch_size=32, hidden_size=16, vision_layers=1, text_layers=1, heads=2,
                             projection_dim=8, warmup_steps=2)
    out = train_clip(config, data, tmp_path / "clip", log_every=1)
    model, processor = CLIPModel.from_pretrained(out), CLIPProcessor.from_pretrained(out)
    fast = CLIPTokenizerFast.from_pretrained(out)
    prompt = "a blurry photo of a sneaker"
    assert processor.tokenizer(prompt)["input_ids"] == fast(prompt)["input_ids"] and len(fast.tokenize(prompt)) == 6
    with torch.no_grad():
        scored = model(**processor(text=[prompt], images=[Image.new("RGB", (28, 28))], return_tensors="pt"))
    assert scored.logits_per_image.shape == (1, 1)
    record = json.loads((out / "training.json").read_text())
    assert record["updates"] == 6 and [r["step"] for r in record["log"]] == [1, 2, 3, 4, 5, 6]
    assert not list(tmp_path.glob(".clip-*"))  # the temporary folder became the model


def test_train_clip_script_names_a_bad_key_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train_clip.py"), "--out", str(tmp_path / "c"), "epoch=2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown CLIP training key(s) ['epoch']" in proc.stderr and "'epochs'" in proc.stderr
    assert not (tmp_path / "c").exists()


def test_average_precision_and_auc_of_the_clip_benchmark():
    from benchmarks.fashion_clip import auc, average_precision

    assert average_precision([True, False, True], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False, True], [0.9, 0.8]) == pytest.approx(0.5)
    assert auc([3, 4], [1, 2]) == 1.0 and auc([1, 2], [3, 4]) == 0.0 and auc([1], [1]) == 0.5
