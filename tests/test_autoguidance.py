"""Autoguidance (Karras et al. 2024): a guide U-Net, a worse model of the same task, as a pipeline component; every
step adds a * (out(x, c) - guide(x, c)) beside classifier-free guidance."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import gen, make_tiny_pipeline, run_cli
from pipeline import FashionDDPMPipeline
from pipeline.models import load_pipeline, with_guide
from pipeline.sampling import generate
from pipeline.settings import SamplingSettings


@pytest.fixture
def guided():
    return with_guide(make_tiny_pipeline(), make_tiny_pipeline(seed=1))


def test_the_guide_term_is_added_to_the_classifier_free_output_with_one_guide_pass_per_step(guided):
    x, t, ids = torch.randn(3, 1, 28, 28, generator=gen()), torch.tensor(50), torch.tensor([0, 4, 8])
    sampling = {"guidance_interval": (0.0, 1.0), "guidance_scale": 2.5, "guidance_rescale": 0.0,
                "style_guidance_scale": None, "guide_scale": 0.5}
    calls = []
    handle = guided.guide_unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        out = guided.model_output(x, t, 0, ids, None, sampling)
        plain = guided.guided_prediction(x, t, ids, 2.5)
        cond = guided.unet(x, t, class_labels=ids).sample
        guide = guided.guide_unet(x, t, class_labels=ids).sample
    handle.remove()
    assert calls == [3, 3]  # one guide pass of the batch (the second is the check's own)
    torch.testing.assert_close(out, plain + 0.5 * (cond - guide), atol=1e-5, rtol=1e-5)


def test_a_weight_of_0_is_exactly_the_model_without_its_guide(guided):
    without = make_tiny_pipeline()
    kwargs = {"class_labels": ["Bag", "Dress"], "num_inference_steps": 3, "guidance_scale": 2.0, "output_type": "pt"}
    a = guided(generator=[gen(1), gen(2)], guide_scale=0.0, **kwargs).images
    b = without(generator=[gen(1), gen(2)], **kwargs).images
    assert torch.equal(a, b)
    c = guided(generator=[gen(1), gen(2)], guide_scale=1.0, **kwargs).images
    assert not torch.equal(a, c)


def test_settings_name_the_guide_and_an_explicit_0_turns_a_models_default_guide_off(tmp_path):
    pipe = with_guide(make_tiny_pipeline(), make_tiny_pipeline(seed=1), default_guide_scale=0.5)
    settings = SamplingSettings.resolve(pipe)
    assert settings.guide == 0.5 and settings.label().endswith(":a=0.5") and settings.to_json()["guide_scale"] == 0.5
    assert SamplingSettings.parse(settings.label(), pipe) == settings
    assert SamplingSettings.from_json(settings.to_json()) == settings
    off = SamplingSettings.resolve(pipe, guide=0)
    assert off.guide is None and off.pipeline_arguments()["guide_scale"] == 0.0
    on = generate(pipe, ["Bag"], 1, seed=0, settings=SamplingSettings.resolve(pipe, steps=2)).images
    plain = generate(pipe, ["Bag"], 1, seed=0, settings=SamplingSettings.resolve(pipe, steps=2, guide=0)).images
    assert not torch.equal(on, plain)
    assert torch.equal(plain, generate(make_tiny_pipeline(), ["Bag"], 1, seed=0, steps=2, guidance=2.0).images)


def test_a_model_with_its_guide_saves_and_loads_as_one_folder_also_without_this_package(tmp_path):
    pipe = with_guide(make_tiny_pipeline(), make_tiny_pipeline(seed=1), default_guide_scale=0.5)
    pipe.save_pretrained(tmp_path / "m")
    index = json.loads((tmp_path / "m" / "model_index.json").read_text())
    assert index["guide_unet"] == ["diffusers", "UNet2DModel"] and index["default_guide_scale"] == 0.5
    loaded = load_pipeline(tmp_path / "m")
    kwargs = {"class_labels": ["Dress", "Bag"], "num_inference_steps": 2, "output_type": "pt"}
    expected = pipe(generator=[gen(1), gen(2)], **kwargs).images
    torch.testing.assert_close(loaded(generator=[gen(1), gen(2)], **kwargs).images, expected, rtol=0, atol=0)
    torch.save(expected, tmp_path / "expected.pt")
    code = ("import sys, torch\nfrom diffusers import DiffusionPipeline\n"
            f"p = DiffusionPipeline.from_pretrained({str(tmp_path / 'm')!r}, trust_remote_code=True)\n"
            "p.set_progress_bar_config(disable=True)\n"
            "got = p(class_labels=['Dress', 'Bag'], num_inference_steps=2, output_type='pt', "
            "generator=[torch.Generator().manual_seed(s) for s in (1, 2)]).images\n"
            f"print('SAME', torch.equal(got, torch.load({str(tmp_path / 'expected.pt')!r})))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert "SAME True" in shown.stdout, shown.stderr[-2000:]


def test_a_folder_saved_without_a_guide_still_loads_and_has_none(tiny_saved):
    pipe = FashionDDPMPipeline.from_pretrained(tiny_saved)
    assert pipe.guide_unet is None


@pytest.mark.parametrize("call, match", [
    ({"guide_scale": 0.5}, "guide_scale needs a model with a guide"),
    ({"guide_scale": -1.0}, "guide_scale must be"),
])
def test_bad_guide_input_is_one_line_before_any_unet_call(call, match, unet_calls):
    pipe = make_tiny_pipeline() if "needs" in match else with_guide(make_tiny_pipeline(), make_tiny_pipeline(seed=1))
    unet_calls.clear()
    with pytest.raises(ValueError, match=match):
        pipe(class_labels=["Bag"], num_inference_steps=2, **call)
    assert not unet_calls


def test_a_guide_must_be_a_class_only_model_of_the_same_classes_and_schedule():
    with pytest.raises(ValueError, match="the guide has prediction_type 'epsilon', the model 'v_prediction'"):
        with_guide(make_tiny_pipeline(), make_tiny_pipeline(prediction_type="epsilon"))
    other = FashionDDPMPipeline.from_config_dict(unet={**make_tiny_pipeline().unet.config,
                                                       "num_class_embeds": 4}, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="the guide has classes"):
        with_guide(make_tiny_pipeline(), other)


def test_the_command_line_takes_a_guide_weight(tmp_path, capsys):
    with_guide(make_tiny_pipeline(), make_tiny_pipeline(seed=1)).save_pretrained(tmp_path / "m")
    code, out = run_cli(["generate", "--model", str(tmp_path / "m"), "--class", "Bag", "--steps", "2",
                         "--guide-scale", "0.5", "--out", str(tmp_path / "g.png")], capsys)
    assert code == 0 and (tmp_path / "g.png").is_file(), out
    code, out = run_cli(["generate", "--model", str(tmp_path / "m"), "--class", "Bag", "--guide-scale", "-1",
                         "--out", str(tmp_path / "h.png")], capsys)
    assert code == 2 and "--guide-scale" in out and not (tmp_path / "h.png").exists()
