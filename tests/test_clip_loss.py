"""The CLIP-guided training loss (pipeline/training/clip_loss.py) and the class-only fine-tune it is measured with: the
x0 estimate inverts the noising, the weights follow the stated rule, the gradient reaches the U-Net and not the frozen
CLIP, a run with the term logs it and says so on its card, and its config keys are checked before any work."""

import json

import pytest
import torch
from diffusers import DDPMScheduler
from test_trainer import data_dir, trainer  # noqa: F401  (the module's random IDX folder fixture)

from conftest import TINY_CONFIG, make_tiny_pipeline
from pipeline.training.clip_loss import ClipGuidanceLoss
from pipeline.training.config import load_config

CLASSES = [f"class {i}" for i in range(10)]


def scheduler(prediction_type="v_prediction"):
    return DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type)


def loss_on(tiny_clip, prediction_type="v_prediction", *overrides):
    config = load_config(str(TINY_CONFIG), ["clip_loss_weight=0.5", f"clip_model={tiny_clip}",
                                            f"prediction_type={prediction_type}", *overrides])
    return ClipGuidanceLoss.from_config(config, scheduler(prediction_type), CLASSES, torch.device("cpu"))


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_x0_estimate_inverts_the_noising(tiny_clip, prediction_type):
    loss, sched = loss_on(tiny_clip, prediction_type), scheduler(prediction_type)
    torch.manual_seed(0)
    x0, noise, t = torch.rand(6, 1, 28, 28) * 2 - 1, torch.randn(6, 1, 28, 28), torch.tensor([0, 5, 20, 49, 80, 95])
    noisy = sched.add_noise(x0, noise, t)
    output = sched.get_velocity(x0, noise, t) if prediction_type == "v_prediction" else noise
    torch.testing.assert_close(loss.x0_estimate(noisy, output, t)[:5], x0[:5], atol=1e-4, rtol=0)


def test_weights_are_alpha_bar_up_to_max_noise_and_zero_for_the_null_class(tiny_clip):
    loss = loss_on(tiny_clip, "v_prediction", "clip_max_noise=0.3")
    t, labels = torch.tensor([0, 10, 30, 31, 90, 10]), torch.tensor([1, 2, 3, 4, 5, 10])  # 10 = the null class
    alpha_bar = scheduler().alphas_cumprod[t]
    expected = alpha_bar * torch.tensor([1.0, 1, 1, 0, 0, 0])
    torch.testing.assert_close(loss.image_weights(t, labels), expected)
    # a batch with no image inside the window costs nothing and keeps the graph
    prediction = torch.randn(2, 1, 28, 28, requires_grad=True)
    value, term = loss(torch.randn(2, 1, 28, 28), prediction, torch.tensor([60, 90]), torch.tensor([0, 1]))
    assert value.item() == 0 and term.item() == 0 and value.requires_grad


def test_the_term_is_one_minus_prompt_cosine_plus_negative_cosine(tiny_clip):
    from transformers import CLIPModel

    from pipeline.evaluation.clip import load_clip, prompt_name
    from pipeline.training.clip import pixel_values

    loss = loss_on(tiny_clip)
    x0, labels = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([0, 4, 9])
    model, scorer = CLIPModel.from_pretrained(tiny_clip), load_clip(str(tiny_clip))
    with torch.no_grad():
        image = model.get_image_features(pixel_values=pixel_values((x0 + 1) / 2, scorer.processor.image_processor))
    image = torch.nn.functional.normalize(image if torch.is_tensor(image) else image.pooler_output, dim=-1)
    names = [prompt_name(CLASSES[i]) for i in labels]
    clear = torch.from_numpy(scorer.text_embeddings([f"a clear photo of a {n}" for n in names]))
    blurry = torch.from_numpy(scorer.text_embeddings([f"a blurry photo of a {n}" for n in names]))
    expected = 1 - (image * clear).sum(-1) + (image * blurry).sum(-1)
    torch.testing.assert_close(loss.terms(x0, labels), expected, atol=1e-5, rtol=1e-5)
    plain = loss_on(tiny_clip, "v_prediction", "clip_negative_prompt=null")
    torch.testing.assert_close(plain.terms(x0, labels), 1 - (image * clear).sum(-1), atol=1e-5, rtol=1e-5)


def test_the_gradient_reaches_the_unet_and_not_the_frozen_clip(tiny_clip):
    loss = loss_on(tiny_clip)
    unet = make_tiny_pipeline().unet
    noisy, t, labels = torch.randn(4, 1, 28, 28), torch.tensor([3, 10, 40, 90]), torch.tensor([0, 1, 2, 10])
    value, term = loss(noisy, unet(noisy, t, class_labels=labels).sample, t, labels)
    value.backward()
    assert value.item() > 0 and 0 < term.item() < 4  # two cosines: the term lies in [0, 4]
    grads = [p.grad for p in unet.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.model.parameters())


def test_a_run_with_the_term_logs_it_and_says_so_on_its_card(tmp_path, data_dir, tiny_clip):  # noqa: F811
    plain = trainer(tmp_path / "plain", data_dir, "max_train_steps=2", "checkpointing_steps=2").run()
    t = trainer(tmp_path / "clip", data_dir, "max_train_steps=2", "checkpointing_steps=2", "clip_loss_weight=0.5",
                f"clip_model={tiny_clip}", "clip_max_noise=1")
    assert t.clip_loss is not None and t.clip_loss.weight == 0.5
    out = t.run()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < r["clip_term"] < 4 for r in rows)
    card = (out / "README.md").read_text()
    assert "CLIP-guided loss" in card and "λ = 0.5" in card and "a blurry photo of a {}" in card
    assert "CLIP-guided loss" not in (plain / "README.md").read_text()
    assert "clip_term" not in (plain / "metrics.jsonl").read_text()


def test_a_class_only_fine_tune_starts_as_its_base_and_checks_it(tmp_path, data_dir):  # noqa: F811
    from pipeline import FashionDDPMPipeline

    base = trainer(tmp_path / "base", data_dir, "max_train_steps=2", "checkpointing_steps=2").run()
    t = trainer(tmp_path / "tune", data_dir, "max_train_steps=2", "checkpointing_steps=2", f"init_from={base}", "unet={}")
    kwargs = {"class_labels": ["Bag", "Coat"], "num_inference_steps": 2, "guidance_scale": 2.0, "output_type": "pt"}
    start = t.ema_pipeline()(generator=[torch.Generator().manual_seed(s) for s in (0, 1)], **kwargs).images
    ref = FashionDDPMPipeline.from_pretrained(base)(generator=[torch.Generator().manual_seed(s) for s in (0, 1)], **kwargs)
    torch.testing.assert_close(start, ref.images, rtol=0, atol=1e-6)
    out = t.run()
    assert "Fine-tuned from" in (out / "README.md").read_text()
    with pytest.raises(ValueError, match="has prediction_type 'v_prediction', the config 'epsilon'; set prediction_type"):
        trainer(tmp_path / "bad", data_dir, f"init_from={base}", "unet={}", "prediction_type=epsilon")


@pytest.mark.parametrize("override, message", [
    ("clip_loss_weight=-1", "'clip_loss_weight' must be a finite number >= 0"),
    ("clip_loss_weight=.nan", "'clip_loss_weight' must be a finite number >= 0"),
    ("clip_max_noise=0", "'clip_max_noise' must be in (0, 1]"),
    ("clip_prompt=a clear photo", "'clip_prompt' must be a prompt with exactly one {}"),
    ("clip_prompt=null", "'clip_prompt' must be str, got None"),
    ("clip_negative_prompt='a {} or {}'", "'clip_negative_prompt' must be a prompt with exactly one {} for the class name or null"),
    ("clip_model=pretrained/fashion-clip", "clip_loss_weight is 0, so it would not be used"),
])
def test_bad_clip_loss_keys_are_named(override, message):
    with pytest.raises(ValueError) as error:
        load_config(str(TINY_CONFIG), [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_missing_clip_folder_is_one_line_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"config key 'clip_model': CLIP model folder .*nope does not exist"):
        load_config(str(TINY_CONFIG), ["clip_loss_weight=0.1", f"clip_model={tmp_path / 'nope'}"])
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text('{"model_type": "unet"}')
    with pytest.raises(ValueError, match="is not a CLIP model folder"):
        load_config(str(TINY_CONFIG), ["clip_loss_weight=0.1", f"clip_model={tmp_path / 'unet'}"])
    assert load_config(str(TINY_CONFIG), ["clip_negative_prompt=null"]).clip_negative_prompt is None
