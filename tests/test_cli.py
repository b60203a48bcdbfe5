"""`fashion-ddpm generate` on a tiny saved pipeline; `fashion-ddpm train` and `train_conditional.py`: one parser, one
call, bad input refused before any training."""

from pathlib import Path

import pytest
from PIL import Image

from conftest import run_cli
from pipeline.cli import main


def test_generate_writes_labelled_grid(tiny_saved, tmp_path, capsys):
    out = tmp_path / "grid.png"
    main(["generate", "--model", str(tiny_saved), "--class", "Sneaker", "--class", "8", "--num", "3",
          "--steps", "2", "--out", str(out)])
    grid = Image.open(out)
    assert grid.height >= 2 * 56 and grid.width >= 3 * 56  # 2 rows x 3 images at 2x scale, plus labels
    assert "6 images: 3 per class for Sneaker, Bag" in capsys.readouterr().out


def test_generate_with_fast_sampler(tiny_saved, tmp_path):
    main(["generate", "--model", str(tiny_saved), "--class", "top", "--num", "1", "--scheduler", "dpm++",
          "--steps", "3", "--out", str(tmp_path / "g.png")])
    assert (tmp_path / "g.png").is_file()


@pytest.mark.parametrize("args,message", [
    (["--class", "spaceship"], "unknown class name 'spaceship'; valid names"),
    (["--steps", "500"], "num_inference_steps must be an int in 1..100"),
])
def test_generate_bad_input(tiny_saved, tmp_path, args, message):
    with pytest.raises(SystemExit, match=message):
        main(["generate", "--model", str(tiny_saved), "--out", str(tmp_path / "x.png"), *args])
    assert not (tmp_path / "x.png").exists()


def test_missing_model_folder(tmp_path):
    with pytest.raises(SystemExit, match=f"model folder {tmp_path / 'nope'} does not exist"):
        main(["generate", "--model", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="not a saved pipeline folder"):
        main(["generate", "--model", str(tmp_path)])


def test_main_returns_none_so_the_console_script_exits_zero(tiny_saved, tmp_path):
    assert main(["generate", "--model", str(tiny_saved), "--num", "1", "--steps", "1", "--class", "0",
                 "--out", str(tmp_path / "one.png")]) is None


def test_missing_shipped_model_says_how_to_point_at_one(monkeypatch, tmp_path):
    import pipeline.models

    monkeypatch.delenv("FASHION_DDPM_MODEL", raising=False)
    monkeypatch.setattr(pipeline.models, "SHIPPED_MODEL_CANDIDATES", (tmp_path / "a", tmp_path / "b"))
    with pytest.raises(SystemExit, match="was not found .* pass --model DIR_OR_HUB_ID or set FASHION_DDPM_MODEL"):
        main(["generate", "--out", str(tmp_path / "x.png")])
    monkeypatch.setenv("FASHION_DDPM_MODEL", str(tmp_path / "c"))
    with pytest.raises(SystemExit, match="is not a folder"):
        main(["generate", "--out", str(tmp_path / "x.png")])


# --------------------------------------------------------------------------------------------- fashion-ddpm train
TINY = str(Path(__file__).resolve().parent.parent / "configs" / "tiny.yaml")


@pytest.fixture
def trainings(monkeypatch):
    """The calls that reach `pipeline.training.trainer.train` (each recorded, none run)."""
    import pipeline.training.trainer

    calls = []
    monkeypatch.setattr(pipeline.training.trainer, "train", lambda *a: calls.append(a))
    return calls


@pytest.mark.parametrize("args,message", [  # (the command line's words after the config, the one line it gets)
    ("num_epochs=zero", "'num_epochs' must be int, got 'zero'"),
    ("sample_steps=101", "config key 'sample_steps' must be an int in 1..100"),
    ("--config nope.yaml", "config file nope.yaml does not exist"),
    ("--resume_from_checkpoint nope", "--resume_from_checkpoint nope: no such checkpoint folder"),
    ("--hub_model_id me/fashion", "--hub_model_id me/fashion is given without --push_to_hub"),
])
def test_train_bad_input_is_one_line_before_any_training(args, message, trainings, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", TINY, f"output_dir={tmp_path / 'run'}", *args.split()])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert trainings == [] and not (tmp_path / "run").exists()


def test_train_command_and_script_make_the_same_call(trainings, tmp_path):
    import runpy

    argv = ["--config", TINY, f"output_dir={tmp_path}", "num_epochs=1", "--resume_from_checkpoint", "latest"]
    main(["train", *argv])
    script = runpy.run_path(str(Path(TINY).parents[1] / "train_conditional.py"))  # its main, not run as __main__
    assert script["main"](argv) is None
    assert len(trainings) == 2 and trainings[0] == trainings[1]
    config, resume, push = trainings[0][:3]
    assert (config.num_epochs, config.output_dir, resume, push) == (1, str(tmp_path), "latest", False)


def test_fast_is_the_shipped_student_and_excludes_model(tmp_path, capsys):
    code, out = run_cli(["generate", "--fast", "--class", "Bag", "--num", "1", "--out", str(tmp_path / "f.png")], capsys)
    assert code == 0 and "ddim 4 steps" in out and (tmp_path / "f.png").is_file(), out
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--fast", "--model", "x", "--class", "Bag", "--out", str(tmp_path / "g.png")])
    assert exit_info.value.code == 2 and "not allowed with argument --fast" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


def test_a_retired_model_path_stops_in_one_line_naming_its_replacement(tmp_path, capsys, monkeypatch):
    import pipeline.models

    monkeypatch.setitem(pipeline.models.RETIRED_MODELS, "fashion-ddpm-old", "pretrained/fashion-ddpm (class + style)")
    code, out = run_cli(["generate", "--model", "pretrained/fashion-ddpm-old", "--out", str(tmp_path / "x.png")], capsys)
    assert code == 2 and out.strip() == ("error: pretrained/fashion-ddpm-old is no longer shipped: use "
                                         "pretrained/fashion-ddpm (class + style)")
    assert not (tmp_path / "x.png").exists()
