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

