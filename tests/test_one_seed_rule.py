"""One sampling function, one seed rule: the same --seed gives the same image of a class in every command."""

import pytest
import torch

import pipeline.evaluation.best_of_n
import pipeline.evaluation.clip
import pipeline.evaluation.fidelity
import pipeline.sampling
import pipeline.visualize
from conftest import make_tiny_pipeline
from pipeline.cli import main
from pipeline.sampling import generate, image_seed, plan


def test_an_image_depends_only_on_seed_class_and_index():
    pipe = make_tiny_pipeline()
    sampling = {"steps": 3, "guidance": 2.0}
    everything = generate(pipe, None, 3, seed=5, batch_size=7, **sampling)
    bags = generate(pipe, ["Bag"], 2, seed=5, batch_size=1, **sampling)
    later = generate(pipe, "Bag", 1, seed=5, start_index=2, **sampling)
    bag_rows = [i for i, c in enumerate(everything.class_ids) if c == 8]
    torch.testing.assert_close(everything.images[bag_rows], torch.cat([bags.images, later.images]))
    assert bags.seeds == [image_seed(5, 8, 0), image_seed(5, 8, 1)] == [8_000_005, 8_000_006]
    assert plan([8, 8], 2, 0)[1] == [image_seed(0, 8, j) for j in range(4)]  # a class named twice continues
    with pytest.raises(ValueError, match="per_label must be an int >= 1, got 0"):
        generate(pipe, "Bag", 0)
    with pytest.raises(TypeError, match="unknown sampling option.s. num_inference_steps; accepted: .* sampler, steps"):
        generate(pipe, "Bag", 1, num_inference_steps=2)  # not silently ignored, nor a pipeline traceback


@pytest.fixture
def recorded(monkeypatch):
    """Every `generate` call any command makes: (class ids, seeds, images)."""
    calls = []

    def recording(*args, **kwargs):
        samples = generate(*args, **kwargs)
        calls.append(samples)
        return samples

    for module in (pipeline.sampling, pipeline.evaluation.fidelity, pipeline.evaluation.clip,
                   pipeline.evaluation.best_of_n, pipeline.visualize):
        monkeypatch.setattr(module, "generate", recording)
    return calls


def _bag_images(samples_list) -> dict[int, torch.Tensor]:
    """seed -> image of every Bag the calls made."""
    return {seed: samples.images[i] for samples in samples_list
            for i, (c, seed) in enumerate(zip(samples.class_ids, samples.seeds)) if c == 8}


@pytest.mark.needs_data  # evaluate scores against the real test set
def test_same_seed_same_image_in_every_command(tmp_path, tiny_saved, tiny_clip, recorded, monkeypatch):
    monkeypatch.setenv("FASHION_DDPM_CACHE", str(tmp_path / "cache"))
    common = ["--model", str(tiny_saved), "--steps", "3", "--guidance", "2", "--seed", "11"]
    commands = {
        "generate": ["generate", "--class", "Bag", "--num", "2", "--out", str(tmp_path / "g.png")],
        "evaluate": ["evaluate", "--num-per-class", "2", "--no-inception", "--judge-ref-size", "50",
                     "--out", str(tmp_path / "ev")],
        "evaluate-clip": ["evaluate-clip", "--class", "Bag", "--num-per-class", "2", "--clip-model", str(tiny_clip),
                          "--out", str(tmp_path / "clip")],
        "best-of-n": ["best-of-n", "--class", "8", "--pool", "2", "--keep", "1", "--clip-model", str(tiny_clip),
                      "--out", str(tmp_path / "bon")],
        "visualize": ["visualize", "--no-forward", "--num-per-class", "2", "--out", str(tmp_path / "fig")],
    }
    bags = {}
    for name, argv in commands.items():
        recorded.clear()
        main([*argv, *common])
        bags[name] = _bag_images(recorded)
    reference = bags["generate"]
    assert sorted(reference) == [image_seed(11, 8, 0), image_seed(11, 8, 1)]
    for name, images in bags.items():
        assert set(reference) <= set(images), (name, sorted(images))
        for seed, image in reference.items():
            torch.testing.assert_close(images[seed], image, msg=f"{name}: Bag with seed {seed} differs from generate's")
