"""The Trainer in this process, on configs/tiny.yaml and a few hundred random images written as IDX files (no dataset
needed): it trains, exports a loadable pipeline with the recipe's sampling defaults, and a wall-clock budget fixes the
run's length after its probe exactly as a launch with that max_train_steps would have been."""

import json
import math

import pytest
import torch
from diffusers.optimization import get_scheduler

from conftest import TINY_CONFIG, write_idx_folder
from pipeline.training.config import load_config
from pipeline.training.trainer import Trainer


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_idx_folder(tmp_path_factory.mktemp("idx"))


def trainer(tmp_path, data_dir, *overrides) -> Trainer:
    torch.set_num_threads(1)
    config = load_config(str(TINY_CONFIG), [f"data_dir={data_dir}", f"output_dir={tmp_path / 'run'}", "sample_every_steps=0",
                                            *overrides])
    t = Trainer(config)
    t.setup()
    return t


def test_trains_and_exports_the_recipes_defaults(tmp_path, data_dir):
    from pipeline import FashionDDPMPipeline
    from pipeline.sampling import generate
    from pipeline.settings import SamplingSettings

    t = trainer(tmp_path, data_dir, "max_train_steps=4", "checkpointing_steps=4")
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    out = t.run()
    assert any(not torch.equal(before[k], v) for k, v in t.model.state_dict().items())  # it learnt something
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and all(math.isfinite(r["loss"]) for r in rows)
    pipe = FashionDDPMPipeline.from_pretrained(out)
    assert SamplingSettings.resolve(pipe) == SamplingSettings("unipc", 4, 1.5, (0.17, 0.88))  # the recipe, tiny.yaml's steps
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert generate(pipe, ["Bag"], 2, steps=2).images.shape == (2, 1, 28, 28)
    assert "unipc 4 steps, guidance 1.5 for t/T in [0.17, 0.88]" in (out / "README.md").read_text()


def test_budget_fixes_the_length_after_the_probe(tmp_path, data_dir):
    budget = ("max_train_steps=400", "max_train_minutes=0.04", "budget_probe_steps=2", "lr_warmup_steps=2",
              "checkpointing_steps=1000", "log_every_steps=1")
    t = trainer(tmp_path, data_dir, *budget)
    assert t.max_steps == 400 and not t.budget_fixed
    t.run()
    length = t.max_steps
    assert t.budget_fixed and 3 <= length < 400  # 2.4 s of training: a few updates (~0.1-0.3 s each), not 400
    # the run is the one a launch with max_train_steps=length makes: same LR at every step, ending the cosine at 0
    reference = get_scheduler("cosine", torch.optim.SGD([torch.zeros(1)], lr=t.config.learning_rate),
                              num_warmup_steps=2, num_training_steps=length)
    logged = {json.loads(line)["step"]: json.loads(line)["lr"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()}
    assert sorted(logged) == list(range(1, length + 1))
    for step, lr in logged.items():
        assert lr == pytest.approx(reference.lr_lambdas[0](step) * t.config.learning_rate, abs=1e-12), step
    assert t.lr_scheduler.get_last_lr()[0] == pytest.approx(0, abs=1e-12)
    # resuming the finished run keeps the length the probe chose
    again = trainer(tmp_path, data_dir, *budget)
    again.run(resume_from_checkpoint="latest")
    assert again.max_steps == length


def test_budget_probe_leaves_out_the_slow_first_updates(tmp_path, data_dir, monkeypatch):
    """A compiled loop's first updates take a minute, the rest milliseconds: the probe times the steady ones, so the
    budget left after compilation is filled instead of being divided by the compilation's pace. The loop's clock is a
    fake one that only the updates advance, so the test does not depend on the machine's load."""
    from pipeline.training import loop as loop_module
    from pipeline.training import trainer as trainer_module

    clock = [1000.0]
    monkeypatch.setattr(loop_module.time, "perf_counter", lambda: clock[0])
    t = trainer(tmp_path, data_dir, "max_train_steps=400", "max_train_minutes=0.05", "budget_probe_steps=8",
                "lr_warmup_steps=8", "checkpointing_steps=1000", "log_every_steps=100")
    calls = []

    def update(step):  # the first update "compiles" for 1.5 s; the others take 5 ms
        calls.append(step)
        clock[0] += 1.5 if len(calls) == 1 else 0.005
        return torch.zeros(())

    monkeypatch.setattr(t, "update", update)
    t.run()
    # 3 s of budget, 1.5 s compiling: ~1.5 s left at 5 ms is ~290 more updates; timing the compiling update too
    # would have estimated ~0.19 s per update and stopped near 16
    assert trainer_module.PROBE_WARMUP_UPDATES == 3 and t.budget_fixed and 280 <= t.max_steps <= 300
    assert calls == list(range(t.max_steps))


def test_budget_probe_must_end_inside_the_warm_up():
    with pytest.raises(ValueError, match=r"'budget_probe_steps' \(50\) must be <= lr_warmup_steps \(10\)"):
        load_config(None, ["max_train_minutes=5", "lr_warmup_steps=10"])


def test_style_model_trains_exports_and_starts_as_its_class_only_base(tmp_path, data_dir):
    from pipeline import FashionDDPMPipeline
    from pipeline.models import load_pipeline

    base = trainer(tmp_path / "base", data_dir, "max_train_steps=2", "checkpointing_steps=2").run()
    style = ["width", "brightness"]
    t = trainer(tmp_path / "style", data_dir, "max_train_steps=2", "checkpointing_steps=2", f"style_attributes={style}",
                f"init_from={base}", "unet={}", "style_learning_rate=0.01")
    # the style MLP learns at its own rate, everything else at the U-Net's
    groups = t.raw_optimizer.param_groups
    assert [g["initial_lr"] for g in groups][1:] == [0.01] and len(groups[1]["params"]) == 4
    # before any update the style model computes exactly what its class-only base computes (style path at zero)
    start, base_pipe = t.ema_pipeline(), FashionDDPMPipeline.from_pretrained(base)
    g = [torch.Generator().manual_seed(0)]
    kwargs = {"class_labels": ["Bag"], "num_inference_steps": 2, "guidance_scale": 2.0, "output_type": "pt"}
    same = start(generator=g, style="wide dark", **kwargs).images
    torch.testing.assert_close(same, base_pipe(generator=[torch.Generator().manual_seed(0)], **kwargs).images, rtol=0, atol=1e-5)
    out = t.run()
    pipe = load_pipeline(out)
    assert pipe.style_attributes == style and pipe.condition_encoder.config.percentile_tables.keys() == set(style)
    images = pipe(style={"width": 0.9}, **kwargs).images
    assert images.shape == (1, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown style attribute 'pattern'; this model takes"):
        pipe(style={"pattern": 0.5}, **kwargs)


@pytest.mark.parametrize("free", [0.0, 0.75])
def test_style_free_prob_leaves_every_attribute_out_of_that_share_of_images(tmp_path, data_dir, free):
    """style_free_prob trains the style=None mode (every attribute free) on its share of the images, beside
    style_dropout's per-attribute draws; at 0 the random stream is the one runs had before the key."""
    t = trainer(tmp_path, data_dir, "max_train_steps=1", "style_attributes=[width, brightness, area]", "label_dropout=0",
                "style_dropout=0.01", f"style_free_prob={free}", "train_batch_size=64")
    seen = []
    real = t.model

    def spy(noisy, steps, labels, style, given):
        seen.append(given.clone())
        return real(noisy, steps, labels, style, given)

    t.model = spy
    t.loss_on(0, 0)
    given = seen[0]
    none_given = float((given.sum(dim=1) == 0).float().mean())
    if free == 0:
        assert none_given < 0.1
    else:
        assert 0.6 <= none_given <= 0.9, none_given
    with pytest.raises(ValueError, match=r"config key 'style_free_prob' must be in \[0, 1\)"):
        load_config(None, ["style_free_prob=1"])


def test_side_by_side_emas_are_exported_and_power_0_is_the_raw_weights(tmp_path, data_dir):
    from pipeline import FashionDDPMPipeline

    t = trainer(tmp_path, data_dir, "max_train_steps=4", "checkpointing_steps=4", "ema_extra_powers=[0, 0.9]")
    out = t.run()
    raw = FashionDDPMPipeline.from_pretrained(out / "ema-power-0").unet.state_dict()
    trained = t.accelerator.unwrap_model(t.model).state_dict()
    assert all(torch.equal(raw[k], v) for k, v in trained.items())  # decay 0: the shadow is the weights
    longer = FashionDDPMPipeline.from_pretrained(out / "ema-power-0.9").unet.state_dict()
    recipe = FashionDDPMPipeline.from_pretrained(out).unet.state_dict()
    assert any(not torch.equal(longer[k], recipe[k]) for k in recipe)  # another average than the recipe's EMA


def test_min_snr_weights_the_v_loss_by_min_snr_over_snr_plus_1(tmp_path, data_dir):
    from diffusers.training_utils import compute_snr

    t = trainer(tmp_path, data_dir)  # the recipe: Min-SNR-5
    assert (t.config.loss_weighting, t.config.snr_gamma) == ("min_snr", 5.0)
    steps = torch.arange(0, 100, 7)
    snr = compute_snr(t.noise_scheduler, steps)
    assert torch.allclose(t.loss_weights(steps), torch.clamp(snr, max=5) / (snr + 1))
    assert t.loss_weights(steps).max() <= 5 / 6 + 1e-6  # the largest weight sits where SNR = gamma
    plain = trainer(tmp_path / "plain", data_dir, "loss_weighting=none")
    assert torch.equal(plain.loss_weights(steps), torch.ones(len(steps)))
    assert math.isfinite(t.update(0).item())


@pytest.mark.parametrize("override, named", [("loss_weighting=snr", "loss_weighting"), ("snr_gamma=0", "snr_gamma"),
                                             ("ema_extra_powers=[0.75]", "ema_extra_powers"),
                                             ("ema_extra_powers=[-1]", "ema_extra_powers"),
                                             ("torch_compile=fast", "torch_compile")])
def test_bad_recipe_keys_are_named(override, named):
    with pytest.raises(ValueError, match=named):
        load_config(str(TINY_CONFIG), [override])


def test_a_style_model_is_trained_on_from_its_exported_folder(tmp_path, data_dir):
    """A style run's export (e.g. committed, to go on on another machine) is an init_from: the run starts from its
    U-Net and encoder exactly; another set of attributes is refused before any update."""
    from pipeline.models import load_pipeline

    style = ["width", "brightness"]
    first = trainer(tmp_path / "first", data_dir, "max_train_steps=2", "checkpointing_steps=2",
                    f"style_attributes={style}").run()
    again = trainer(tmp_path / "again", data_dir, "max_train_steps=2", "checkpointing_steps=2",
                    f"style_attributes={style}", f"init_from={first}", "unet={}")
    kwargs = {"class_labels": ["Bag"], "num_inference_steps": 2, "guidance_scale": 2.0, "output_type": "pt",
              "style": {"width": 0.9}}
    start = again.ema_pipeline()(generator=[torch.Generator().manual_seed(0)], **kwargs).images
    exported = load_pipeline(first)(generator=[torch.Generator().manual_seed(0)], **kwargs).images
    torch.testing.assert_close(start, exported, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="init_from's condition encoder has style_attributes"):
        trainer(tmp_path / "other", data_dir, "max_train_steps=2", "style_attributes=[width]", f"init_from={first}",
                "unet={}")
