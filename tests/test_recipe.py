"""scripts/recipe.py: the rule that picks a model's default guidance, its checks before any work, and (real data) the
whole recipe on the tiny config: train, sweep, choose, export, evaluate, then resume without redoing anything."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.settings import SamplingSettings
from pipeline.training.recipe import choose_guidance, sweep_settings

REPO = Path(__file__).resolve().parent.parent


def row(sampler, steps, w, accuracy, judge_fid, interval=None, rescale=0.0):
    return {"sampler": sampler, "steps": steps, "guidance_scale": w, "guidance_interval": interval,
            "guidance_rescale": rescale, "judge_accuracy": accuracy, "judge_fid": judge_fid, "setting": f"{sampler}:{steps}:{w}"}


def test_default_is_the_lowest_judge_fid_with_accuracy_at_least_095():
    rows = [row("ddpm", 100, 2, 0.99, 0.30),                    # another sampler: never the default
            row("unipc", 10, 1.25, 0.949, 0.40),                # best FID but accuracy below 0.95
            row("unipc", 10, 2, 0.97, 0.35, rescale=0.7),       # rescale rows are not candidates
            row("unipc", 10, 1.5, 0.956, 0.54, interval=[0.17, 0.88]),
            row("unipc", 10, 2, 0.975, 0.63, interval=[0.17, 0.88]),
            row("unipc", 20, 1.5, 0.99, 0.20)]                  # same sampler, other step count
    best = choose_guidance(rows, "unipc", 10)
    assert (best["guidance_scale"], best["guidance_interval"]) == (1.5, [0.17, 0.88])
    assert choose_guidance(rows, "unipc", 10, min_accuracy=0.999) is None
    # the committed sweep of the default model gives its shipped default
    sweep = json.loads((REPO / "benchmarks/results/gpu_guidance_sweep.json").read_text())["rows"]
    rows = [{**r, "guidance_scale": r["guidance"]} for r in sweep]
    assert SamplingSettings.from_json(choose_guidance(rows, "unipc", 10)) == SamplingSettings("unipc", 10, 1.5, (0.17, 0.88))


def test_sweep_covers_each_w_on_the_interval_and_at_every_step():
    labels = [s.label() for s in sweep_settings(SamplingSettings("unipc", 10, 1.5, (0.17, 0.88)), (1, 2))]
    assert labels == ["unipc:10:1", "unipc:10:2:i=0.17-0.88", "unipc:10:2:i=0-1"]


def recipe(*args, cwd=REPO, timeout=900):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "recipe.py"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("args, words", [
    (["num_epochs=0"], "'num_epochs' must be >= 1, got 0"),
    (["output_dir=x"], "output_dir is set by the recipe"),
    (["--guidance", "1,x"], "--guidance: must be comma-separated numbers"),
    (["--guidance", "-1"], "guidance_scale must be a finite number >= 0"),
    (["--min-accuracy", "2"], "--min-accuracy must be in [0, 1], got 2.0"),
    (["--num-per-class", "0"], "--num-per-class must be an int >= 1, got 0"),
    (["--max-train-minutes", "0"], "'max_train_minutes' must be null or a finite number > 0"),
    (["--device", "cuda"], "CUDA is not available"),
])
def test_bad_input_is_named_before_any_work(args, words, tmp_path, capsys, monkeypatch):
    import runpy

    import pipeline.training.recipe

    monkeypatch.setattr(pipeline.training.recipe.Recipe, "run", lambda self: pytest.fail("the recipe started"))
    monkeypatch.setattr("sys.argv", ["recipe.py", "--config", str(REPO / "configs/tiny.yaml"), "--out", str(tmp_path / "out"),
                                     *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "scripts" / "recipe.py"), run_name="__main__")
    text = capsys.readouterr().err
    assert exit_info.value.code == 2 and words in text and "Traceback" not in text, text
    assert not (tmp_path / "out").exists()


@pytest.mark.needs_data
def test_tiny_recipe_end_to_end_and_resume(tmp_path):
    out = tmp_path / "recipe"
    args = ["--config", "configs/tiny.yaml", "--out", str(out), "--num-per-class", "2", "--guidance", "1,2",
            "--min-accuracy", "0", "--no-inception", "report_to=none"]
    first = recipe(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    log = json.loads((out / "recipe.json").read_text())
    assert set(log["phases"]) == {"train", "sweep", "export", "evaluate"}
    sweep = json.loads((out / "guidance_sweep.json").read_text())["rows"]
    chosen = SamplingSettings.from_json(choose_guidance(sweep, "unipc", 4, 0.0))
    assert log["phases"]["sweep"]["chosen"] == chosen.label() == log["phases"]["export"]["settings"]
    index = json.loads((out / "model" / "model_index.json").read_text())
    assert index["default_guidance_scale"] == chosen.guidance and index["default_num_inference_steps"] == 4
    metrics = json.loads((out / "evaluate" / "metrics.json").read_text())
    assert SamplingSettings.from_json(metrics) == chosen and metrics["num_images"] == 20
    assert "judge-FID" in (out / "model" / "README.md").read_text()
    # the same command again: training resumes at its end, the sweep rows are kept, nothing is re-exported
    mtime = (out / "model" / "model_index.json").stat().st_mtime
    second = recipe(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (out / "model" / "model_index.json").stat().st_mtime == mtime
    assert json.loads((out / "guidance_sweep.json").read_text())["rows"] == sweep


def gpu_commands() -> list[list[str]]:
    """The commands of docs/training.md's "The recipe on your GPU", backslash continuations joined."""
    section = (REPO / "docs" / "training.md").read_text().split("## The recipe on your GPU")[1]
    block = section.split("```bash")[1].split("```")[0].replace("\\\n", " ")
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("python")]


def test_gpu_recipe_commands_are_valid_and_use_the_keys_they_check():
    from benchmarks.loss_match import parse_args
    from pipeline.training.config import load_config

    check, *recipes = gpu_commands()
    fast = parse_args(check[3:]).set
    assert fast == ["torch_compile=reduce-overhead", "channels_last=true"]
    assert [argv[argv.index("--config") + 1] for argv in recipes] == ["configs/fashion_mnist.yaml", "configs/large.yaml"]
    for argv in recipes:  # both GPU runs are valid configs with the fast keys and the budget
        overrides = [a for a in argv if "=" in a and not a.startswith("-")]
        minutes = argv[argv.index("--max-train-minutes") + 1]
        c = load_config(str(REPO / argv[argv.index("--config") + 1]), [*overrides, f"max_train_minutes={minutes}"])
        assert overrides == fast and c.torch_compile == "reduce-overhead" and c.channels_last
        assert c.prediction_type == "v_prediction" and c.max_train_minutes == 8
