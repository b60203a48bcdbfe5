"""CLIP scoring with a tiny random CLIPModel built offline and loaded through from_pretrained, like real weights."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CLIP_IMAGE_SIZE as IMAGE_SIZE
from conftest import make_tiny_pipeline
from pipeline import FASHION_MNIST_CLASSES
from pipeline.cli import main
from pipeline.evaluation.best_of_n import best_of_n, best_of_n_images
from pipeline.evaluation.clip import (
    ClipModelError,
    evaluate_pipeline,
    load_clip,
    per_class_table,
    quality_score,
)
from pipeline.images import to_rgb_pil

CLASSES = list(FASHION_MNIST_CLASSES)


@pytest.fixture(scope="module")
def scorer(tiny_clip):
    return load_clip(str(tiny_clip), device="cpu")


def _random_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)) for _ in range(n)]


def test_grey_28x28_becomes_rgb_at_processor_size(scorer):
    grey = torch.full((2, 1, 28, 28), 128 / 255)  # the pipeline's "pt" output format, in [0, 1]
    rgb = to_rgb_pil(grey)
    assert [im.mode for im in rgb] == ["RGB", "RGB"] and rgb[0].size == (28, 28)
    assert np.array_equal(np.asarray(rgb[0])[..., 0], np.asarray(rgb[0])[..., 2])
    pixels = scorer.pixel_values(grey)
    assert tuple(pixels.shape) == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    proc = scorer.processor.image_processor
    mean, std = torch.tensor(proc.image_mean), torch.tensor(proc.image_std)
    expected = (128 / 255 - mean) / std  # a constant grey image stays constant through resize and centre crop
    torch.testing.assert_close(pixels[0].mean(dim=(1, 2)), expected, atol=1e-3, rtol=0)
    assert float((pixels[0] - expected[:, None, None]).abs().max()) < 1e-3
    # A non-constant grey image: after undoing the per-channel normalisation the three channels are equal.
    pattern = scorer.pixel_values(np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(1, 28, 28, 1))
    unnormalised = pattern[0] * std[:, None, None] + mean[:, None, None]
    torch.testing.assert_close(unnormalised[0], unnormalised[1], atol=1e-4, rtol=0)
    torch.testing.assert_close(unnormalised[0], unnormalised[2], atol=1e-4, rtol=0)
    # PIL, uint8 arrays and (B, H, W) arrays are accepted too.
    assert len(to_rgb_pil(_random_images(3))) == 3
    assert len(to_rgb_pil(np.zeros((4, 28, 28), np.uint8))) == 4


@pytest.mark.parametrize("bad", [torch.rand(2, 2, 28, 28), torch.rand(28, 28), torch.rand(2, 1, 1, 28, 28)])
def test_wrong_image_shape_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="images have shape"):
        to_rgb_pil(bad)


def test_model_range_images_are_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_rgb_pil(torch.rand(2, 1, 28, 28) * 2 - 1)


def test_scores_shapes_ranges_and_formula(scorer):
    labels = [0, 1, 2, 7, 7, 9]
    scores = scorer.score(_random_images(6), labels, CLASSES)
    assert scores.similarities.shape == scores.probabilities.shape == (6, 3)
    assert scores.zero_shot_probs.shape == (6, 10)
    assert np.all(np.abs(scores.similarities) <= 1 + 1e-6)
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(scores.zero_shot_probs.sum(axis=1), 1, atol=1e-6)
    p = scores.probabilities
    np.testing.assert_allclose(scores.quality, p[:, 0] + p[:, 1] - p[:, 2], atol=1e-12)
    np.testing.assert_allclose(scores.quality, 1 - 2 * p[:, 2], atol=1e-9)
    np.testing.assert_allclose(quality_score(p), scores.quality)
    assert np.all((scores.quality >= -1) & (scores.quality <= 1))
    # the probabilities are a softmax of CLIP's logit scale times the cosine similarities
    logits = scores.logit_scale * scores.similarities
    np.testing.assert_allclose(p, np.exp(logits) / np.exp(logits).sum(1, keepdims=True), atol=1e-6)
    assert scores.logit_scale == pytest.approx(float(scorer.model.logit_scale.detach().exp()))
    guess = scores.zero_shot_guess
    assert guess.shape == (6,) and np.all((guess >= 0) & (guess < 10))
    assert np.array_equal(scores.zero_shot_correct, guess == np.asarray(labels))
    row = scores.rows()[3]
    assert row["class_name"] == "Sneaker" and row["zs_guess"] == CLASSES[guess[3]]
    # scoring is per image: a batch gives the same numbers as one image alone
    alone = scorer.score(_random_images(6)[3:4], [7], CLASSES)
    np.testing.assert_allclose(alone.similarities[0], scores.similarities[3], atol=1e-5)


def test_label_errors(scorer):
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        scorer.score(_random_images(2), [0, 1, 2], CLASSES)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        scorer.score(_random_images(1), [10], CLASSES)


def test_evaluate_pipeline_writes_reports(scorer, tmp_path):
    pipe = make_tiny_pipeline()
    scores = evaluate_pipeline(pipe, scorer, num_per_class=2, class_labels=["Bag", "Sneaker", 0], out_dir=tmp_path,
                               top=2, steps=2)
    assert len(scores) == 6 and sorted(set(scores.labels.tolist())) == [0, 7, 8]
    with open(tmp_path / "clip_scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"quality", "p_good", "sim_blurry", "zs_guess", "zs_correct"} <= set(rows[0])
    table = json.loads((tmp_path / "clip_per_class.json").read_text())
    assert [c["n"] for c in table["classes"]] == [2, 0, 0, 0, 0, 0, 0, 2, 2, 0]
    bag = table["classes"][8]
    assert bag["quality_mean"] == pytest.approx(float(scores.quality[scores.labels == 8].mean()), abs=1e-9)
    assert bag["quality_std"] == pytest.approx(float(np.std(scores.quality[scores.labels == 8], ddof=1)), abs=1e-9)
    assert 0 <= table["overall"]["zero_shot_agreement"] <= 1 and table["overall"]["n"] == 6
    md = (tmp_path / "clip_per_class.md").read_text()
    assert "| Bag | 2 |" in md and "±" in md and "**all**" in md
    for name in ("clip_best.png", "clip_worst.png"):
        image = Image.open(tmp_path / name)
        assert image.width >= 2 * 28 * 3 and image.height >= 3 * 28 * 3
    assert per_class_table(scores)["overall"]["n"] == 6


def test_best_of_n_keeps_the_top_k(scorer, tmp_path):
    images = _random_images(12, seed=1)
    labels = [3] * 5 + [5] * 7
    result = best_of_n_images(scorer, images, labels, CLASSES, keep=3)
    q = result.scores.quality
    for c, members in [(3, range(0, 5)), (5, range(5, 12))]:
        want = sorted(members, key=lambda i: -q[i])[:3]
        assert result.kept[c] == want
        assert min(q[result.kept[c]]) >= max(q[[i for i in members if i not in want]])
        assert result.kept_images[c][0] is result.scores.images[want[0]]
    paths = result.save(tmp_path)
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and sum(r["kept"] == "True" for r in rows) == 6
    assert {int(r["index"]) for r in rows if r["kept"] == "True"} == set(result.kept[3] + result.kept[5])
    assert Image.open(paths["png"]).width >= 3 * 28 * 3
    summary = json.loads(paths["json"].read_text())
    assert [c["kept_index"] for c in summary["classes"]] == [result.kept[3], result.kept[5]]
    with pytest.raises(ValueError, match="keep"):
        best_of_n_images(scorer, images, labels, CLASSES, keep=0)


def test_best_of_n_from_a_pipeline(scorer, tmp_path):
    pipe = make_tiny_pipeline()
    result = best_of_n(pipe, scorer, pool=4, keep=2, class_labels=["Trouser", "Bag"], out_dir=tmp_path, steps=2)
    assert len(result.scores) == 8 and set(result.kept) == {1, 8} and all(len(v) == 2 for v in result.kept.values())
    assert (tmp_path / "best_of_n.png").is_file() and (tmp_path / "best_of_n_pool.png").is_file()
    with pytest.raises(ValueError, match="keep"):
        best_of_n(pipe, scorer, pool=2, keep=3)


def test_cli_evaluate_clip_and_best_of_n(tiny_saved, tiny_clip, tmp_path, capsys):
    main(["evaluate-clip", "--model", str(tiny_saved), "--num-per-class", "2", "--steps", "2", "--guidance", "2",
          "--clip-model", str(tiny_clip), "--out", str(tmp_path / "eval"), "--clip-device", "cpu"])
    out = capsys.readouterr().out
    assert "zero-shot agreement" in out and "| Ankle boot | 2 |" in out
    for name in ("clip_scores.csv", "clip_per_class.json", "clip_per_class.md", "clip_best.png", "clip_worst.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "eval" / "clip_per_class.json").read_text())["overall"]["n"] == 20

    main(["best-of-n", "--model", str(tiny_saved), "--pool", "3", "--keep", "2", "--steps", "2", "--class", "Bag",
          "--class", "7", "--clip-model", str(tiny_clip), "--out", str(tmp_path / "bon"), "--clip-device", "cpu"])
    summary = json.loads((tmp_path / "bon" / "best_of_n.json").read_text())
    assert [c["class_name"] for c in summary["classes"]] == ["Bag", "Sneaker"]
    assert all(len(c["kept_index"]) == 2 for c in summary["classes"]) and summary["pool"] == 3
    assert (tmp_path / "bon" / "best_of_n.png").is_file()

    with pytest.raises(SystemExit, match="--keep"):
        main(["best-of-n", "--model", str(tiny_saved), "--pool", "2", "--keep", "3", "--clip-model", str(tiny_clip)])


def test_non_clip_folder_is_a_clear_error(tiny_saved, tmp_path):
    with pytest.raises(ClipModelError, match=rf"{tiny_saved}.*not a CLIP model folder.*CLIPModel"):
        load_clip(str(tiny_saved))  # a diffusers pipeline folder: no config.json
    unet = tiny_saved / "unet"  # a config.json, but not a CLIP one
    with pytest.raises(ClipModelError, match="not a CLIP model folder"):
        load_clip(str(unet))
    with pytest.raises(ClipModelError, match="does not exist"):
        load_clip(str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match=rf"error: .*{tiny_saved}.*not a CLIP model folder.*Hub id"):
        main(["evaluate-clip", "--model", str(tiny_saved), "--clip-model", str(tiny_saved), "--out", str(tmp_path)])


def test_evaluate_clip_defaults_to_the_shipped_fashion_clip_offline(tiny_saved, tmp_path, capsys, monkeypatch):
    from pipeline.evaluation.clip import SHIPPED_CLIP_CANDIDATES, default_clip_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert default_clip_model() == str(SHIPPED_CLIP_CANDIDATES[0] if (SHIPPED_CLIP_CANDIDATES[0] / "config.json").is_file()
                                       else SHIPPED_CLIP_CANDIDATES[1])
    main(["evaluate-clip", "--model", str(tiny_saved), "--num-per-class", "1", "--steps", "2", "--class", "Bag",
          "--out", str(tmp_path / "eval"), "--clip-device", "cpu"])
    table = json.loads((tmp_path / "eval" / "clip_per_class.json").read_text())
    assert table["overall"]["n"] == 1 and "fashion-clip" in capsys.readouterr().out + json.dumps(table)
    with pytest.raises(SystemExit, match=r"error: --clip-model: CLIP model folder .*nope does not exist"):
        main(["evaluate-clip", "--model", str(tiny_saved), "--clip-model", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
