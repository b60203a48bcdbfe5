"""`SamplingSettings`: resolved once against a model, checked by the pipeline file's validators, and naming itself in
exactly the strings and keys that committed results, cards and manifests already hold."""

import json
from pathlib import Path

import pytest

from conftest import make_tiny_pipeline
from pipeline.settings import SamplingSettings

REPO = Path(__file__).resolve().parent.parent
INTERVAL = (0.17, 0.88)


@pytest.fixture
def interval_pipe():
    from pipeline.schedulers import use_sampler

    pipe = use_sampler(make_tiny_pipeline(), "unipc")
    pipe.register_to_config(default_guidance_scale=1.5, default_num_inference_steps=10, default_guidance_interval=list(INTERVAL))
    return pipe


def test_resolve_takes_the_models_defaults_once(interval_pipe):
    s = SamplingSettings.resolve(interval_pipe)
    assert s == SamplingSettings("unipc", 10, 1.5, INTERVAL, 0.0)
    assert SamplingSettings.resolve(interval_pipe, guidance=3).interval == INTERVAL  # the model's interval, any w
    assert SamplingSettings.resolve(interval_pipe, interval=(0, 1)).every_step
    assert SamplingSettings.resolve(interval_pipe, sampler="ddpm").steps == 100  # another sampler: its own default
    assert SamplingSettings.resolve(interval_pipe, sampler="unipc").steps == 10  # the model's sampler: the model's
    unguided = SamplingSettings.resolve(interval_pipe, guidance=1, rescale=0.5)  # nothing for them to change:
    assert unguided == SamplingSettings("unipc", 10, 1) and unguided.every_step and not unguided.guided
    assert unguided.to_json() == {"sampler": "unipc", "num_inference_steps": 10, "guidance_scale": 1.0}
    with pytest.raises(ValueError, match="guidance_interval must be"):  # ... but a bad one is still named
        SamplingSettings.resolve(interval_pipe, guidance=1, interval=(0.8, 0.2)).check(interval_pipe)


def test_describe_and_to_json_reproduce_the_committed_strings_and_keys():
    # titles, cards and reports have always said "{sampler} {steps} steps, guidance ..." ...
    assert SamplingSettings("unipc", 10, 1.5, INTERVAL).describe() == "unipc 10 steps, guidance 1.5 for t/T in [0.17, 0.88]"
    assert SamplingSettings("ddpm", 100, 2.0).describe() == "ddpm 100 steps, guidance 2"
    assert SamplingSettings("dpm++", 20, 2, (0, 1), 0.7).guidance_text() == "guidance 2, rescale 0.7"
    assert SamplingSettings("ddpm", 100, 1).describe() == "ddpm 100 steps, guidance 1"
    # ... and synthesize manifests the keys of pipeline.sampling.sampling_settings: the interval whenever guided
    assert SamplingSettings("unipc", 10, 1.5, INTERVAL).to_json() == {
        "sampler": "unipc", "num_inference_steps": 10, "guidance_scale": 1.5, "guidance_interval": [0.17, 0.88]}
    assert SamplingSettings("unipc", 10, 2).to_json()["guidance_interval"] == [0.0, 1.0]
    assert "guidance_interval" not in SamplingSettings("unipc", 10, 1).to_json()
    assert SamplingSettings("dpm++", 20, 2, (0, 1), 0.7).to_json()["guidance_rescale"] == 0.7


def test_from_json_reads_every_form_written_so_far():
    s = SamplingSettings("unipc", 10, 1.5, INTERVAL)
    assert SamplingSettings.from_json(json.loads(json.dumps(s.to_json()))) == s
    # an evaluate result (benchmarks/results/evaluate_gpu_default/metrics.json)
    result = json.loads((REPO / "benchmarks/results/evaluate_gpu_default/metrics.json").read_text())
    assert SamplingSettings.from_json(result) == s
    # a benchmark row (guidance, steps) and a manifest from before intervals were named (= every step)
    assert SamplingSettings.from_json({"sampler": "ddpm", "steps": 100, "guidance": 2, "guidance_interval": None}).every_step
    assert SamplingSettings.from_json({"sampler": "ddpm", "num_inference_steps": 4, "guidance_scale": 2}).every_step
    with pytest.raises(ValueError, match="lack steps"):
        SamplingSettings.from_json({"sampler": "ddpm", "guidance_scale": 2})


def test_label_and_parse_round_trip(interval_pipe):
    for s in (SamplingSettings("unipc", 10, 1.5, INTERVAL), SamplingSettings("ddpm", 100, 1),
              SamplingSettings("dpm++", 20, 2, (0, 1), 0.7)):
        assert SamplingSettings.parse(s.label()) == s
    assert SamplingSettings("unipc", 10, 1.5, INTERVAL).label() == "unipc:10:1.5:i=0.17-0.88"
    # parts left out come from the model
    assert SamplingSettings.parse("unipc:10", interval_pipe) == SamplingSettings("unipc", 10, 1.5, INTERVAL)
    assert SamplingSettings.parse("ddpm:100:2:i=0-1", interval_pipe).every_step
    for bad in ("plms:10:2", "unipc", "unipc:ten", "unipc:10:2:i=0.2", "unipc:10:nan"):
        with pytest.raises(ValueError, match="must be SAMPLER:STEPS"):
            SamplingSettings.parse(bad)
    with pytest.raises(ValueError, match="names no guidance"):
        SamplingSettings.parse("unipc:10")


@pytest.mark.parametrize("settings, words", [
    (SamplingSettings("plms", 10, 2), "sampler must be one of ['ddpm'"),
    (SamplingSettings("unipc", 0, 2), "num_inference_steps must be an int in 1..100"),
    (SamplingSettings("unipc", 101, 2), "num_inference_steps must be an int in 1..100"),
    (SamplingSettings("unipc", 10, -1), "guidance_scale must be a finite number >= 0"),
    (SamplingSettings("unipc", 10, float("inf")), "guidance_scale must be a finite number >= 0"),
    (SamplingSettings("unipc", 10, 2, (0.9, 0.1)), "guidance_interval must be (low, high)"),
    (SamplingSettings("unipc", 10, 2, (0, 1), 1.5), "guidance_rescale must be a number in [0, 1]"),
])
def test_check_names_the_bad_value(settings, words, interval_pipe):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace(".", r"\.")):
        settings.check(interval_pipe)


@pytest.mark.slow  # subprocess
def test_import_is_torch_free():
    from conftest import heavy_modules_after

    code = "from pipeline.settings import SamplingSettings\nSamplingSettings.parse('unipc:10:2:i=0.2-0.8').describe()"
    assert heavy_modules_after(code)[0] == []


def test_cli_args_replay_the_same_settings(interval_pipe):
    from pipeline.cli import build_parser
    from pipeline.cli.common import sampling_settings_from_args

    s = SamplingSettings("dpm++", 20, 2, (0.2, 0.8), 0.5)
    args = build_parser().parse_args(["generate", *s.cli_args()])
    assert sampling_settings_from_args(args, interval_pipe) == s



# ---------------------------------------------------------------------------------------------- a searched schedule
SCHEDULE = (99, 70, 35, 10)


def test_a_schedule_names_itself_round_trips_and_replays(interval_pipe):
    from pipeline.cli import build_parser
    from pipeline.cli.common import sampling_settings_from_args

    s = SamplingSettings("dpm++", 4, 1.5, INTERVAL, 0.0, list(SCHEDULE))
    assert s.timesteps == SCHEDULE and s != SamplingSettings("dpm++", 4, 1.5, INTERVAL)
    assert s.label() == "dpm++:4:1.5:i=0.17-0.88:t=99-70-35-10"
    assert s.describe() == "dpm++ 4 steps at t = 99, 70, 35, 10, guidance 1.5 for t/T in [0.17, 0.88]"
    assert s.to_json()["timesteps"] == list(SCHEDULE) and SamplingSettings.from_json(s.to_json()) == s
    assert SamplingSettings.parse(s.label(), interval_pipe) == s
    args = build_parser().parse_args(["generate", *s.cli_args()])
    assert sampling_settings_from_args(args, interval_pipe) == s
    assert "timesteps" not in SamplingSettings("dpm++", 4, 1.5).to_json()  # old records keep their keys


def test_a_models_own_schedule_is_its_default_only_when_no_sampler_or_steps_are_given(interval_pipe):
    from pipeline.schedulers import use_sampler

    pipe = use_sampler(interval_pipe, "dpm++")
    pipe.register_to_config(default_timesteps=list(SCHEDULE))
    assert SamplingSettings.resolve(pipe).timesteps == SCHEDULE and SamplingSettings.resolve(pipe).steps == 4
    assert SamplingSettings.resolve(pipe, steps=10).timesteps is None
    assert SamplingSettings.resolve(pipe, sampler="ddpm").timesteps is None


@pytest.mark.parametrize("label, words", [
    ("unipc:4:2:t=99-70-35-10", "need a sampler that takes a timestep list (ddpm, ddim, dpm++, euler); 'unipc' does not"),
    ("dpm++:5:2:t=99-70-35-10", "num_inference_steps 5 and the 4 timesteps [99, 70, 35, 10] disagree"),
    ("dpm++:4:2:t=99-70-70-10", "timesteps must be a list of ints strictly decreasing within 0..99"),
    ("dpm++:2:2:t=120-10", "timesteps must be a list of ints strictly decreasing within 0..99"),
])
def test_a_bad_schedule_is_named(label, words, interval_pipe):
    with pytest.raises(ValueError) as error:
        SamplingSettings.parse(label, interval_pipe).check(interval_pipe)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_the_pipeline_denoises_at_exactly_the_schedule_and_saves_it_as_its_default(tmp_path):
    import torch

    from pipeline import FashionDDPMPipeline
    from pipeline.sampling import generate
    from pipeline.schedulers import use_sampler

    pipe = use_sampler(make_tiny_pipeline(), "dpm++")
    seen = []

    def record(_pipe, _i, t, tensors):
        seen.append(int(t))
        return tensors

    kwargs = {"class_labels": ["Bag"], "guidance_scale": 2.0, "output_type": "pt"}
    explicit = pipe(generator=torch.Generator().manual_seed(0), timesteps=list(SCHEDULE), callback_on_step_end=record,
                    **kwargs).images
    assert seen == list(SCHEDULE)
    with pytest.raises(ValueError, match="num_inference_steps 3 and the 4 timesteps"):
        pipe(timesteps=list(SCHEDULE), num_inference_steps=3, **kwargs)
    pipe.register_to_config(default_timesteps=list(SCHEDULE))
    pipe.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "model_index.json").read_text())["default_timesteps"] == list(SCHEDULE)
    loaded = FashionDDPMPipeline.from_pretrained(tmp_path / "saved")
    torch.testing.assert_close(loaded(generator=torch.Generator().manual_seed(0), **kwargs).images, explicit, rtol=0, atol=1e-5)
    made = generate(loaded, ["Bag"], 1, 0)  # the one sampling function uses the saved schedule and records it
    assert made.settings.timesteps == SCHEDULE
    with pytest.raises(ValueError, match="UniPCMultistepScheduler does not"):
        use_sampler(loaded, "unipc")(**kwargs)
