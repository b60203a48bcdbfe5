"""train_conditional.py (and `fashion-ddpm train`, the same command) with configs/tiny.yaml: runs, exports, resumes
bit-identically, survives bad checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import accelerate_launch_2, sigkill_when_exists
from pipeline.training.config import load_config, validate

REPO = Path(__file__).resolve().parent.parent
needs_data = pytest.mark.needs_data
pytestmark = pytest.mark.slow  # subprocesses and accelerate launch
# One thread per process: reproducible arithmetic, and two processes fit the two cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_cmd(out: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(REPO / "train_conditional.py"), "--config", str(REPO / "configs/tiny.yaml"),
            f"output_dir={out}", *overrides]


def run(cmd, **kw):
    result = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, cwd=REPO, **kw)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def unet_weights(folder: Path) -> dict:
    return load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    result = run(train_cmd(out))
    return out, result


@needs_data
def test_tiny_training_exports_a_loadable_pipeline(tiny_run, tmp_path):
    out, result = tiny_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(2, 17, 2))
    assert rows[-1]["loss"] < rows[0]["loss"]  # it learns something even in 16 steps
    assert all(r["images_per_s"] > 0 and "lr" in r for r in rows)
    assert (out / "samples" / "final.png").is_file() and (out / "samples" / "loss_curve.png").is_file()
    assert (out / "samples" / "step-0000008.png").is_file()  # sample_every_steps: 8
    card = (out / "README.md").read_text()
    from huggingface_hub import ModelCard

    data = ModelCard.load(out / "README.md").data
    assert data.library_name == "diffusers" and "class-conditional" in data.tags and data.pipeline_tag is None
    assert "images seen | 512 (2.0 epochs)" in card
    assert "{{" not in card
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-12", "checkpoint-16"]  # keep last 2
    loader = ("import sys, torch; from diffusers import DiffusionPipeline; "
              "p = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True); "
              "print(p(class_labels=['Bag'], num_inference_steps=2, output_type='np').images.shape)")
    shown = subprocess.run([sys.executable, "-c", loader, str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert shown.stdout.strip().endswith("(1, 28, 28, 1)"), shown.stderr[-2000:]


@needs_data
def test_sigkill_then_resume_is_bit_identical(tiny_run, tmp_path):
    reference, _ = tiny_run
    out = tmp_path / "killed"
    cmd = train_cmd(out, "max_train_steps=16", "checkpointing_steps=4", "sample_every_steps=0")
    sigkill_when_exists(cmd, out / "checkpoints" / "checkpoint-8", ENV, REPO)
    assert not (out / "model_index.json").exists()  # killed before the export
    as_command = [sys.executable, "-m", "pipeline.cli", "train", *cmd[2:]]  # `fashion-ddpm train`: the same run
    run(as_command + ["--resume_from_checkpoint", "latest"])
    want, got = unet_weights(reference), unet_weights(out)
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name
    raw_want = load_file(reference / "checkpoints/checkpoint-16/model.safetensors")
    raw_got = load_file(out / "checkpoints/checkpoint-16/model.safetensors")
    assert all(torch.equal(raw_want[k], raw_got[k]) for k in raw_want)
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # no duplicated log rows after the resume


@needs_data
def test_corrupt_latest_checkpoint_is_skipped(tiny_run, tmp_path):
    reference, _ = tiny_run
    out = tmp_path / "corrupt"
    opts = ("checkpointing_steps=4", "checkpoints_total_limit=5", "sample_every_steps=0")
    run(train_cmd(out, *opts))
    (out / "checkpoints/checkpoint-16/model.safetensors").write_bytes(b"\x00" * 100)  # torn write
    (out / "checkpoints/checkpoint-12/training_state.json").unlink()  # never finished
    (out / "checkpoints/.tmp-checkpoint-13").mkdir()  # a save that was killed half-way
    result = run(train_cmd(out, *opts, "--resume_from_checkpoint", "latest"))
    assert "skipping checkpoint" in result.stderr
    assert "checkpoint-16: it is partial or corrupt" in result.stderr and "checkpoint-12: it is partial" in result.stderr
    assert "resumed from step 8" in result.stderr
    assert not (out / "checkpoints/.tmp-checkpoint-13").exists()
    want, got = unet_weights(reference), unet_weights(out)
    assert all(torch.equal(want[k], got[k]) for k in want)  # resuming from step 8 reproduces the uninterrupted run


@needs_data
def test_two_processes_with_accelerate_launch(tmp_path):
    out = tmp_path / "ddp"
    cmd = accelerate_launch_2(*train_cmd(out, "max_train_steps=6")[1:])
    result = run(cmd)
    assert "process 0 of 2 finished 6 updates" in result.stderr and "process 1 of 2 finished 6 updates" in result.stderr
    assert "2 processes, 6 updates of 64 images" in result.stderr
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]  # one writer
    assert (out / "model_index.json").is_file() and (out / "checkpoints" / "checkpoint-4" / "model.safetensors").is_file()


def test_config_validation_errors(tmp_path):
    assert load_config(str(REPO / "configs/tiny.yaml")).max_train_steps == 16
    for name in ("cpu", "fashion_mnist", "large"):
        load_config(str(REPO / f"configs/{name}.yaml"))
    overridden = load_config(str(REPO / "configs/tiny.yaml"), ["mixed_precision=no", "hflip=true", "unet={layers_per_block: 2}"])
    assert (overridden.mixed_precision, overridden.hflip, overridden.unet) == ("no", True, {"layers_per_block": 2})
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['batch_size'\]; valid keys: \[.*'train_batch_size'"):
        validate({"batch_size": 3})
    with pytest.raises(ValueError, match=r"'learning_rate' must be float, got 'fast'"):
        validate({"learning_rate": "fast"})
    with pytest.raises(ValueError, match=r"'hflip' must be bool, got 1"):
        validate({"hflip": 1})
    with pytest.raises(ValueError, match=r"'mixed_precision' must be one of \['no', 'fp16', 'bf16'\], got 'fp8'"):
        validate({"mixed_precision": "fp8"})
    result = subprocess.run(train_cmd(tmp_path, "num_epochs=zero"), capture_output=True, text=True, cwd=REPO, env=ENV)
    assert result.returncode == 2 and "'num_epochs' must be int, got 'zero'" in result.stderr


def test_missing_data_is_one_clear_message(tmp_path):
    result = subprocess.run(train_cmd(tmp_path / "out", f"data_dir={tmp_path}"), capture_output=True, text=True,
                            cwd=REPO, env=ENV, timeout=300)
    assert result.returncode == 2
    assert "apt-get install -y dataset-fashion-mnist" in result.stderr and "FASHION_MNIST_DIR" in result.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_push_to_hub_fails_before_training(tmp_path):
    env = {**ENV, "HF_HUB_OFFLINE": "1", "HF_TOKEN": ""}
    result = subprocess.run(train_cmd(tmp_path / "out", "--push_to_hub", "--hub_model_id", "someone/fashion-ddpm"),
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 2 and "--push_to_hub" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


@needs_data
def test_cpu_says_fp16_is_ignored(tmp_path):
    result = run(train_cmd(tmp_path / "fp16", "mixed_precision=fp16", "max_train_steps=1", "sample_every_steps=0"))
    assert "mixed_precision=fp16 is ignored on CPU" in result.stderr and "training runs in fp32" in result.stderr


@needs_data
def test_export_checkpoint_reproduces_the_final_export(tiny_run, tmp_path):
    out, _ = tiny_run
    exported = tmp_path / "at-16"
    run([sys.executable, str(REPO / "scripts/export_checkpoint.py"), "--run", str(out), "--step", "16", "--out",
         str(exported), "sample_sampler=dpm++", "sample_steps=3", "sample_guidance_scale=1.5",
         "sample_guidance_interval=[0.2, 0.9]"])
    a, b = unet_weights(out), unet_weights(exported)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same EMA weights as the run's export
    index = json.loads((exported / "model_index.json").read_text())
    assert index["default_guidance_scale"] == 1.5 and index["default_num_inference_steps"] == 3
    assert index["default_guidance_interval"] == [0.2, 0.9]
    assert json.loads((exported / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == "DPMSolverMultistepScheduler"
    assert "optimizer updates | 16 of 32 images" in (exported / "README.md").read_text()
    result = subprocess.run([sys.executable, str(REPO / "scripts/export_checkpoint.py"), "--run", str(out), "--step", "5",
                             "--out", str(tmp_path / "x")], capture_output=True, text=True, env=ENV, cwd=REPO)
    assert result.returncode == 2 and "no checkpoint-5" in result.stderr and "[12, 16]" in result.stderr


@needs_data
def test_export_checkpoint_ships_a_style_model_with_its_guide_and_style_guidance(tiny_run, tmp_path):
    """The shipped default's folder in one command: the run's checkpoint, a class-only model's U-Net as its guide, and
    the style guidance measured for it; a guide the model cannot take stops in one line before anything is written."""
    from pipeline.models import load_pipeline

    guide, _ = tiny_run
    style_run = tmp_path / "style"
    run(train_cmd(style_run, "max_train_steps=2", "checkpointing_steps=2", "sample_every_steps=0",
                  "style_attributes=[width, brightness]"))
    shipped = tmp_path / "shipped"
    run([sys.executable, str(REPO / "scripts/export_checkpoint.py"), "--run", str(style_run), "--out", str(shipped),
         "sample_guidance_scale=1.5", "--guide", str(guide), "--guide-scale", "0.5", "--style-guidance-scale", "3"])
    index = json.loads((shipped / "model_index.json").read_text())
    assert index["guide_unet"] and index["default_guide_scale"] == 0.5 and index["default_style_guidance_scale"] == 3
    pipe = load_pipeline(shipped)
    assert torch.equal(pipe.guide_unet.conv_in.weight, load_pipeline(guide).unet.conv_in.weight)
    card = (shipped / "README.md").read_text()
    assert "w_s = 3 by default" in card and "a = 0.5 by default" in card and "style guidance 3, guide 0.5" in card
    assert not list(shipped.glob(".tmp*"))
    for bad, message in (([str(style_run)], "a guide must be a class-only model"),
                         ([str(guide), "--style-guidance-scale", "2"], "needs a style model")):
        result = subprocess.run([sys.executable, str(REPO / "scripts/export_checkpoint.py"), "--run",
                                 str(style_run if message != "needs a style model" else guide), "--out",
                                 str(tmp_path / "x"), "--guide", bad[0], "--guide-scale", "1", *bad[1:]],
                                capture_output=True, text=True, env=ENV, cwd=REPO)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x" / "model_index.json").exists()


OLD_LOOP = REPO / "tests" / "fixtures" / "trainer-checkpoint-before-the-shared-loop"


def same_machine(made_on: dict) -> bool:
    """Whether this CPU and torch are the ones the fixture was made on (float kernels differ between CPU models)."""
    import hashlib

    flags = next(line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags"))
    cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    digest = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16]
    return (cpu, digest, torch.__version__) == (made_on["cpu"], made_on["cpu_flags_sha256"], made_on["torch"])


@needs_data
def test_a_checkpoint_written_before_the_shared_loop_resumes_to_the_same_weights(tmp_path):
    """A style run with Min-SNR and a side EMA (the shape of the default model's long run), checkpointed by the loop
    before pipeline/training/loop.py existed, resumes on today's loop to the weights the old loop ended with:
    bit-identical on the machine that made the fixture, within float rounding on another CPU."""
    import shutil

    made_on = json.loads((OLD_LOOP / "made_on.json").read_text())
    out = tmp_path / "run"
    shutil.copytree(OLD_LOOP / "checkpoint-4", out / "checkpoints" / "checkpoint-4")
    result = run(train_cmd(out, *made_on["overrides"], "--resume_from_checkpoint", "latest"))
    assert "resumed from step 4" in result.stderr
    got = {**{f"export.unet.{k}": v for k, v in unet_weights(out).items()},
           **{f"export.condition_encoder.{k}": v for k, v in
              load_file(out / "condition_encoder" / "diffusion_pytorch_model.safetensors").items()},
           **{f"raw.{k}": v for k, v in load_file(out / "checkpoints/checkpoint-8/model.safetensors").items()},
           **{f"ema_power_0.unet.{k}": v for k, v in unet_weights(out / "ema-power-0").items()}}
    want = load_file(OLD_LOOP / "expected-after-8-updates.safetensors")
    assert got.keys() == want.keys()
    tolerance = {"rtol": 0, "atol": 0} if same_machine(made_on) else {"rtol": 1e-4, "atol": 1e-6}
    for name in want:
        torch.testing.assert_close(got[name], want[name], **tolerance, msg=name)
