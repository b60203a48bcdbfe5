"""A model's saved guidance interval (`default_guidance_interval` in model_index.json) is its default everywhere:
the pipeline call, `generate`, `synthesize` and training's export; (0, 1) switches it off, and a run's recorded
settings replay the same images on any model."""

import json

import numpy as np
import pytest
import torch

from conftest import TINY_UNET, gen
from pipeline import FashionDDPMPipeline
from pipeline.sampling import generate, image_seed
from pipeline.settings import SamplingSettings
from pipeline.synthesis import MANIFEST, load_synthetic, read_manifest, synthesize

INTERVAL = (0.3, 0.7)
STEPS = {"num_inference_steps": 4}  # pipeline call
GEN_STEPS = {"steps": 4}  # generate / synthesize (SamplingSettings fields)


@pytest.fixture(scope="module")
def interval_pipe():
    torch.manual_seed(0)
    plain = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET)
    pipe = FashionDDPMPipeline(plain.unet, plain.scheduler, default_guidance_interval=list(INTERVAL))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def images(pipe, **kwargs):
    return pipe(class_labels=[0, 7], generator=[gen(1), gen(2)], guidance_scale=3.0, output_type="pt", **STEPS, **kwargs).images


def test_saved_interval_is_the_default_and_zero_one_switches_it_off(interval_pipe, tmp_path):
    interval_pipe.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model_index.json").read_text())["default_guidance_interval"] == list(INTERVAL)
    loaded = FashionDDPMPipeline.from_pretrained(tmp_path / "m")
    loaded.set_progress_bar_config(disable=True)
    default, explicit, every_step = images(loaded), images(loaded, guidance_interval=INTERVAL), images(loaded, guidance_interval=(0, 1))
    torch.testing.assert_close(default, explicit, rtol=0, atol=0)
    assert not torch.allclose(default, every_step, atol=1e-4)  # the interval changes the images
    calls = []
    handle = loaded.unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    images(loaded)
    handle.remove()
    assert 2 in calls and 4 in calls  # one pass outside the interval, the batched guided pass inside it


def test_generate_records_and_replays_the_interval(interval_pipe):
    resolved = SamplingSettings.resolve(interval_pipe, guidance=3.0)
    assert resolved.interval == INTERVAL and resolved.guidance_text() == "guidance 3 for t/T in [0.3, 0.7]"
    # one spelling per set of images: every step, or no guidance at all, names no interval
    every_step = SamplingSettings.resolve(interval_pipe, guidance=3.0, interval=(0, 1))
    assert every_step.every_step and every_step.guidance_text() == "guidance 3"
    assert "guidance_interval" not in SamplingSettings.resolve(interval_pipe, guidance=1.0).to_json()  # nothing to limit
    for options in ({}, {"interval": (0, 1)}):
        samples = generate(interval_pipe, [0, 7], 1, seed=0, guidance=3.0, **GEN_STEPS, **options)
        replayed = generate(interval_pipe, [0, 7], 1, seed=0, settings=samples.settings)
        torch.testing.assert_close(samples.images, replayed.images, rtol=0, atol=0)
        generators = [gen(image_seed(0, 0, 0)), gen(image_seed(0, 7, 0))]
        direct = interval_pipe(class_labels=[0, 7], generator=generators, guidance_scale=3.0, output_type="pt", **STEPS,
                               guidance_interval=options.get("interval")).images
        torch.testing.assert_close(samples.images, direct, rtol=0, atol=0)


def test_synthesize_keeps_every_step_guidance_on_a_model_with_an_interval(interval_pipe, tmp_path):
    """A set made with guidance at every step stays that on resume: the settings never let the default fill in."""
    synthesize(interval_pipe, tmp_path / "all", 2, labels=[3], guidance=3.0, interval=(0, 1), progress=False, **GEN_STEPS)
    synthesize(interval_pipe, tmp_path / "default", 2, labels=[3], guidance=3.0, progress=False, **GEN_STEPS)
    every_step = generate(interval_pipe, [3], 2, seed=0, guidance=3.0, interval=(0, 1), **GEN_STEPS).pil()
    default = generate(interval_pipe, [3], 2, seed=0, guidance=3.0, **GEN_STEPS).pil()
    for folder, expected in (("all", every_step), ("default", default)):
        got = load_synthetic(tmp_path / folder)["image"]
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(got, expected, strict=True))
    manifest = json.loads((tmp_path / "default" / "synthesize.json").read_text())
    assert manifest["settings"]["guidance_interval"] == list(INTERVAL)
    assert json.loads((tmp_path / "all" / "synthesize.json").read_text())["settings"]["guidance_interval"] == [0, 1]


def test_manifests_from_before_named_intervals_mean_every_step(tmp_path):
    for w, expected in ((2.0, [0.0, 1.0]), (1.0, None)):
        (tmp_path / MANIFEST).write_text(json.dumps({"settings": {"sampler": "ddpm", "guidance_scale": w,
                                                                  "num_inference_steps": 20}}))
        assert read_manifest(tmp_path)["settings"].get("guidance_interval") == expected


@pytest.mark.parametrize("bad", [[0.8, 0.2], [0.1], [0, 1.5], "0-1", [True, 1]])
def test_bad_default_interval_is_named(bad):
    torch.manual_seed(0)
    plain = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET)
    with pytest.raises(ValueError, match=r"default_guidance_interval must be \(low, high\) with 0 <= low < high <= 1"):
        FashionDDPMPipeline(plain.unet, plain.scheduler, default_guidance_interval=bad)


@pytest.mark.parametrize("bad", [[0.8, 0.2], [0.5], "x"])
def test_training_config_checks_the_interval(bad):
    from pipeline.training.config import validate

    with pytest.raises(ValueError, match="sample_guidance_interval"):
        validate({"sample_guidance_interval": bad})
    assert validate({"sample_guidance_interval": [0.17, 0.88]}).sample_guidance_interval == [0.17, 0.88]
