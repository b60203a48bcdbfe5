"""Every bad input is stopped before any work: a non-zero exit, one line naming the value, no traceback, no U-Net
call, nothing written. Each row of the tables below was a minutes-long run or a traceback once."""

import json
import runpy
import shutil
from pathlib import Path

import pytest
import torch

from conftest import run_cli

REPO = Path(__file__).resolve().parent.parent


def broken_models(root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Saved folders with one thing wrong each, and the words their error must contain."""
    cases = {}

    def copy(name):
        folder = root / name
        shutil.copytree(good, folder)
        return folder

    f = copy("truncated")
    weights = f / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    cases["truncated safetensors"] = (f, "truncated or corrupt")
    f = copy("bad-index")
    (f / "model_index.json").write_text("{not json")
    cases["invalid model_index.json"] = (f, "model_index.json is not a valid JSON")
    f = copy("no-unet")
    shutil.rmtree(f / "unet")
    cases["missing unet/"] = (f, "no unet/config.json")
    f = copy("no-weights")
    weights = f / "unet" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    cases["missing weights"] = (f, "no U-Net weights")
    f = copy("names")
    index = json.loads((f / "model_index.json").read_text())
    index["id2label"] = {k: v for k, v in index["id2label"].items() if int(k) < 5}
    (f / "model_index.json").write_text(json.dumps(index))
    cases["class names vs embedding"] = (f, "5 class names in model_index.json need num_class_embeds = 6")
    return cases


@pytest.mark.parametrize("case", ["truncated safetensors", "invalid model_index.json", "missing unet/",
                                  "missing weights", "class names vs embedding"])
@pytest.mark.parametrize("command", [["generate"], ["evaluate", "--num-per-class", "1"],
                                     ["evaluate-clip", "--clip-model", "/nonexistent"], ["visualize", "--no-forward"]])
def test_broken_model_folder(case, command, tmp_path, tiny_saved, capsys, unet_calls):
    folder, words = broken_models(tmp_path, tiny_saved)[case]
    out = tmp_path / ("out.png" if command[0] == "generate" else "out")
    code, text = run_cli([*command, "--model", str(folder), "--out", str(out)], capsys)
    assert code != 0 and "Traceback" not in text and words in text and str(folder) in text, text
    assert not unet_calls and not out.exists()


def _cases(tmp_path: Path, tiny: Path) -> list[tuple[list[str], str, dict]]:
    """(argv, words the message must contain, environment) for the command-line table."""
    empty = tmp_path / "empty"
    empty.mkdir()
    model = ["--model", str(tiny)]
    out = ["--out", str(tmp_path / "out.png")]
    no_data = {"FASHION_MNIST_DIR": str(empty), "FASHION_DDPM_CACHE": str(empty)}
    not_gzip, truncated = bad_data_folders(tmp_path)
    (tmp_path / "a-file.txt").write_text("not a folder")
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 20, "loss": 0.1}\n{"step": 40, "loss": 0.09}\nnot json\n')
    return [
        (["evaluate", *model, "--num-per-class", "2", "--out", str(tmp_path / "ev")], "--data-dir DIR", no_data),
        (["generate", *model, "--out", str(tmp_path / "x.txt")], "x.txt: cannot write .txt", {}),
        (["generate", *model, "--out", str(tmp_path / "some_dir") + "/"], "is a folder", {}),
        (["generate", "--model", "typo-folder", *out], "typo-folder", {"HF_HUB_OFFLINE": "1"}),
        (["generate", "--model", "runs/x", *out], "no folder 'runs/x' here, and the Hub model 'runs/x'",
         {"HF_HUB_OFFLINE": "1"}),
        (["generate", "--model", "./runs/x", *out], "model folder ./runs/x does not exist", {}),
        (["generate", *model, "--class", "-1", *out], "class id -1 is out of range: valid ids are 0..9", {}),
        (["generate", *model, "--class", "spaceship", *out], "unknown class name 'spaceship'", {}),
        (["generate", *model, "--num", "0", *out], "--num: must be >= 1, got 0", {}),
        (["generate", *model, "--steps", "500", *out], "num_inference_steps must be an int in 1..100 (the scheduler's training steps), got 500", {}),
        (["generate", *model, "--guidance", "-1", *out], "--guidance: must be a finite number >= 0, got -1", {}),
        (["generate", *model, "--guidance-interval", "0.8", "0.2", *out], "guidance_interval must be (low, high)", {}),
        (["generate", *model, "--guidance-rescale", "2", *out], "guidance_rescale must be a number in [0, 1]", {}),
        (["generate", *model, "--scheduler", "plms", *out], "invalid choice: 'plms'", {}),
        (["evaluate", *model, "--num-per-class", "1", "--batch-size", "0"], "--batch-size: must be >= 1, got 0", {}),
        (["evaluate", *model, "--num-per-class", "1", "--batch-size", "-1"], "--batch-size: must be >= 1, got -1", {}),
        (["evaluate", *model, "--num-per-class", "1", "--steps", "0"], "--steps: must be >= 1, got 0", {}),
        (["evaluate", *model, "--num-per-class", "0"], "--num-per-class: must be >= 1, got 0", {}),
        (["generate", *model, "--device", "cuda", *out], "--device cuda: CUDA is not available", {}),
        (["generate", *model, "--device", "tpu9", *out], "--device 'tpu9' is not a torch device", {}),
        (["evaluate", *model, "--num-per-class", "1", "--update-model-card"], "needs a model card", {}),
        (["visualize", *model, "--metrics", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "fig")],
         "--metrics", {}),
        (["visualize", *model, "--out", str(tmp_path / "fig")], "--data-dir DIR (or --no-forward", no_data),
        (["best-of-n", *model, "--pool", "2", "--keep", "3", "--out", str(tmp_path / "b")], "--keep 3 is more than --pool 2", {}),
        (["evaluate-clip", *model, "--clip-model", str(tmp_path / "no-clip"), "--out", str(tmp_path / "c")],
         "CLIP model folder", {}),
        (["evaluate", *model, "--num-per-class", "1", "--data-dir", str(not_gzip), "--out", str(tmp_path / "ev")],
         f"{not_gzip / 't10k-images-idx3-ubyte.gz'} cannot be read (BadGzipFile", {"FASHION_DDPM_CACHE": str(empty)}),
        (["evaluate", *model, "--num-per-class", "1", "--data-dir", str(truncated), "--out", str(tmp_path / "ev")],
         f"{truncated / 't10k-images-idx3-ubyte.gz'} cannot be read (EOFError", {"FASHION_DDPM_CACHE": str(empty)}),
        (["visualize", *model, "--no-forward", "--metrics", str(metrics), "--out", str(tmp_path / "fig")],
         f"{metrics}, line 3: 'not json' is not a metrics row", {}),
        (["generate", *model, "--out", "/proc/fashion-ddpm/samples.png"], "--out /proc/fashion-ddpm/samples.png: cannot "
         "write into /proc", {}),
        (["generate", *model, "--out", str(tmp_path / "a-file.txt" / "samples.png")], "a-file.txt is a file, not a folder", {}),
    ]


CASE_IDS = ["evaluate-no-data", "out-txt", "out-dir", "model-typo", "model-runs-x", "model-dot-path", "class--1",
            "class-unknown", "num-0", "steps-500", "guidance-neg", "interval", "rescale", "scheduler", "batch-0",
            "batch--1", "steps-0", "num-per-class-0", "device-cuda", "device-bad", "card", "metrics", "visualize-no-data",
            "keep>pool", "clip-missing", "data-not-gzip", "data-truncated", "metrics-malformed", "out-unwritable",
            "out-under-a-file"]


def bad_data_folders(root: Path) -> tuple[Path, Path]:
    """Two folders holding the four Fashion-MNIST file names: files that are not gzip, and truncated gzip files."""
    import gzip

    from pipeline.data import IDX_FILES

    folders = root / "not-gzip", root / "truncated"
    for folder in folders:
        folder.mkdir()
    whole = gzip.compress(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28]) + bytes(2 * 28 * 28))
    for name in (n for files in IDX_FILES.values() for n in files):
        (folders[0] / name).write_bytes(b"<html>not found</html>")  # what a failed download often leaves
        (folders[1] / name).write_bytes(whole[:len(whole) // 2])
    return folders


@pytest.mark.parametrize("index", range(len(CASE_IDS)), ids=CASE_IDS)
def test_command_line_bad_input(index, tmp_path, tiny_saved, capsys, monkeypatch, unet_calls):
    argv, words, env = _cases(tmp_path, tiny_saved)[index]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, text = run_cli(argv, capsys)
    assert code != 0 and "Traceback" not in text, text
    assert words in text, text
    assert not unet_calls, "an image was generated before the error"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "something was written"


CONFIG_CASES = [
    ("sample_every_steps=-1", "'sample_every_steps' must be >= 0"),
    ("checkpointing_steps=0", "'checkpointing_steps' must be >= 1, got 0"),
    ("log_every_steps=0", "'log_every_steps' must be >= 1, got 0"),
    ("max_grad_norm=0", "'max_grad_norm' must be a finite number > 0, got 0.0"),
    ("lr_warmup_steps=-5", "'lr_warmup_steps' must be >= 0, got -5"),
    ("ema_max_decay=1.0", "'ema_max_decay' must be in (0, 1), got 1.0"),
    ("ema_max_decay=0", "'ema_max_decay' must be in (0, 1), got 0.0"),
    ("label_dropout=1", "'label_dropout' must be in [0, 1), got 1.0"),
    ("sample_guidance_scale=-2", "config key 'sample_guidance_scale' must be a finite number >= 0 (0 = unconditional, "
                                 "1 = no guidance), got -2.0"),
    ("sample_sampler=plms", "config key 'sample_sampler' must be one of"),
    ("sample_steps=101", "config key 'sample_steps' must be an int in 1..100"),
    ("max_train_minutes=0", "'max_train_minutes' must be null or a finite number > 0, got 0.0"),
    ("lr_scheduler=cosinus", "'lr_scheduler' must be one of"),
    ("key=[", "override 'key=[' is not valid YAML"),
    ("unet={blocks: 3}", "unknown UNet2DModel argument(s) ['blocks']"),
    ("unet={block_out_channels: [8, 16]}", "config key 'unet' does not build a UNet2DModel"),
]


@pytest.mark.parametrize("override,words", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_training_config_rejected_before_data_loads(override, words, tmp_path, capsys, monkeypatch):
    import pipeline.data

    loads = []
    monkeypatch.setattr(pipeline.data, "load_dataset", lambda *a, **k: loads.append(1))
    monkeypatch.setattr("sys.argv", ["train_conditional.py", "--config", str(REPO / "configs/tiny.yaml"),
                                     f"output_dir={tmp_path / 'run'}", override])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "train_conditional.py"), run_name="__main__")
    text = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in text and words in text, text
    assert not loads and not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["not-gzip", "truncated"])
def test_unreadable_training_data_is_one_line_before_training(kind, tmp_path, capsys, monkeypatch):
    folder = dict(zip(("not-gzip", "truncated"), bad_data_folders(tmp_path)))[kind]
    monkeypatch.setattr("sys.argv", ["train_conditional.py", "--config", str(REPO / "configs/tiny.yaml"), "report_to=none",
                                     f"output_dir={tmp_path / 'run'}", f"data_dir={folder}"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / "train_conditional.py"), run_name="__main__")
    text = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in text, text
    assert f"error: {folder / 'train-images-idx3-ubyte.gz'} cannot be read" in text, text
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_malformed_yaml_file(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("unet: {block_out_channels: [8, 16\nnum_epochs: 2\n")
    monkeypatch.setattr("sys.argv", ["train_conditional.py", "--config", str(bad)])
    with pytest.raises(SystemExit):
        runpy.run_path(str(REPO / "train_conditional.py"), run_name="__main__")
    text = capsys.readouterr().err
    assert f"config file {bad} is not valid YAML (line" in text and "Traceback" not in text


def test_pipeline_takes_numpy_scalars_and_arrays(tiny_pipe):
    import numpy as np

    images = tiny_pipe(class_labels=np.int64(3), guidance_scale=np.float32(2), num_inference_steps=np.int64(2),
                       num_images_per_label=np.int32(2), output_type="pt").images
    assert images.shape == (2, 1, 28, 28)
    assert tiny_pipe.resolve_class_ids(np.array([1, 7])) == [1, 7]
    assert tiny_pipe.resolve_class_ids(np.array(["Bag", "top"])) == [8, 0]
    with pytest.raises(ValueError, match="class_labels array must hold integer ids or names"):
        tiny_pipe.resolve_class_ids(np.array([1.5]))
    torch.testing.assert_close(
        tiny_pipe(class_labels=[3], guidance_scale=2.0, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                  output_type="pt").images,
        tiny_pipe(class_labels=np.int64(3), guidance_scale=np.float32(2), num_inference_steps=2,
                  generator=torch.Generator().manual_seed(0), output_type="pt").images)
