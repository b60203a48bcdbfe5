"""`fashion-ddpm generate` on a tiny saved pipeline."""

import pytest
from PIL import Image

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
