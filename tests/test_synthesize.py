"""`fashion-ddpm synthesize` and pipeline.synthesis: datasets that `datasets` opens, images reproducible from their
stored seeds, kill-safe resume, bad input stopped before any work; mixing a synthetic set into training batches."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from huggingface_hub import DatasetCard

from conftest import accelerate_launch_2, make_tiny_pipeline, run_cli, sigkill_when_exists
from pipeline.data import ImageDataset
from pipeline.data import load_dataset as load_training_data
from pipeline.pipeline_fashion_ddpm import FASHION_MNIST_CLASSES
from pipeline.sampling import generate, image_seed
from pipeline.synthesis import FORMATS, MANIFEST, WORK_DIR, load_synthetic, plan_shards, synthesize
from pipeline.training.config import validate
from pipeline.training.trainer import BatchSampler

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SAMPLING = {"steps": 2, "guidance": 2.0}
COLUMNS = ["image", "label", "index", "seed", "sampler", "steps", "guidance_scale"]


def open_as_documented(out: Path, fmt: str) -> datasets.Dataset:
    """Each format through the plain `datasets` call the dataset card names."""
    if fmt == "arrow":
        return datasets.load_from_disk(str(out))
    if fmt == "parquet":
        return datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    return datasets.load_dataset("imagefolder", data_dir=str(out), split="train")


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def assert_same_dataset(a: datasets.Dataset, b: datasets.Dataset):
    assert len(a) == len(b) and a.features == b.features
    for i in range(len(a)):
        ra, rb = a[i], b[i]
        assert np.array_equal(np.asarray(ra["image"]), np.asarray(rb["image"])), f"image {i} differs"
        assert {k: v for k, v in ra.items() if k != "image"} == {k: v for k, v in rb.items() if k != "image"}, i


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline()


@pytest.fixture(scope="module")
def written(pipe, tmp_path_factory):
    """One small run per format: Bag and Trouser, 5 each, shards of 2 (3 shards per class), seed 3."""
    root = tmp_path_factory.mktemp("synth")
    for fmt in FORMATS:
        synthesize(pipe, root / fmt, 5, ["Bag", "Trouser"], seed=3, fmt=fmt, shard_size=2, progress=False,
                   model_name="tiny-random", command="fashion-ddpm synthesize ...", **SAMPLING)
    return root


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_opens_with_datasets_as_a_fashion_mnist_drop_in(written, fmt):
    out = written / fmt
    ds = open_as_documented(out, fmt)
    assert sorted(ds.column_names) == sorted(COLUMNS)
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["label"] == datasets.ClassLabel(names=list(FASHION_MNIST_CLASSES))
    assert ds["label"][:] == [8] * 5 + [1] * 5 and ds["index"][:] == [0, 1, 2, 3, 4] * 2
    assert ds["seed"][:] == [image_seed(3, c, i) for c in (8, 1) for i in range(5)]
    assert set(ds["sampler"]) == {"ddpm"} and set(ds["steps"]) == {2} and set(ds["guidance_scale"]) == {2.0}
    image = ds[7]["image"]
    assert image.mode == "L" and image.size == (28, 28)
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "mit" and card.data.task_categories == ["image-classification"]
    assert card.data.size_categories == ["n<1K"]
    assert "fashion-ddpm synthesize ..." in card.text and "tiny-random" in card.text
    assert "| sampling | ddpm 2 steps, guidance 2 |" in card.text and 'SamplingSettings.parse("ddpm:2:2:i=0-1")' in card.text
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and manifest["settings"]["format"] == fmt and manifest["stats"]["images"] == 10
    assert manifest["stats"]["seconds_per_image"] > 0
    assert not (out / WORK_DIR).exists()
    training = load_training_data(dataset=str(out))  # what `dataset=DIR` / `mix_dataset=DIR` load for training
    assert training.class_names == list(FASHION_MNIST_CLASSES) and training.labels.tolist() == ds["label"][:]
    assert training.images.shape == (10, 28, 28) and training.images.dtype == torch.uint8
    assert np.array_equal(training.images[7].numpy(), np.asarray(image))


def test_formats_hold_the_same_images(written):
    arrow = load_synthetic(written / "arrow")
    for fmt in ("parquet", "imagefolder"):
        assert_same_dataset(arrow, load_synthetic(written / fmt))


def test_an_image_is_regenerated_from_its_stored_seed(written, pipe):
    ds = load_synthetic(written / "arrow")
    row = ds[8]  # Trouser, index 3: the second shard of its class
    assert (row["label"], row["index"]) == (1, 3) and row["seed"] == image_seed(3, 1, 3)
    again = generate(pipe, [row["label"]], per_label=1, seed=3, start_index=row["index"], sampler=row["sampler"],
                     steps=row["steps"], guidance=row["guidance_scale"])
    assert again.seeds == [row["seed"]]
    assert np.array_equal(np.asarray(again.pil()[0]), np.asarray(row["image"]))


def test_rerunning_a_finished_run_does_nothing(written, pipe, unet_calls):
    out = written / "parquet"
    before = files_under(out)
    summary = synthesize(pipe, out, 5, ["Bag", "Trouser"], seed=3, fmt="parquet", shard_size=2, progress=False, **SAMPLING)
    assert summary["already_complete"] and summary["generated"] == 0
    assert not unet_calls and files_under(out) == before


def test_interrupted_run_resumes_only_the_missing_shards(written, pipe, tmp_path, monkeypatch):
    import pipeline.sampling

    out = tmp_path / "resumed"
    calls, real = [], pipeline.sampling.generate

    def failing_after_two(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third shard
        calls.append(kwargs["start_index"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline.sampling, "generate", failing_after_two)
    with pytest.raises(KeyboardInterrupt):
        synthesize(pipe, out, 5, ["Bag", "Trouser"], seed=3, shard_size=2, progress=False, **SAMPLING)
    manifest = json.loads((out / MANIFEST).read_text())
    assert not manifest["complete"] and not (out / "state.json").exists()
    assert len(list((out / WORK_DIR / "shards").glob("*.parquet"))) == 2
    calls.clear()
    monkeypatch.setattr(pipeline.sampling, "generate", lambda *a, **k: (calls.append(k["start_index"]), real(*a, **k))[1])
    summary = synthesize(pipe, out, 5, ["Bag", "Trouser"], seed=3, shard_size=2, progress=False, **SAMPLING)
    assert summary["generated"] == 6 and calls == [4, 0, 2, 4]  # Bag's last shard, then Trouser's three
    assert_same_dataset(load_synthetic(written / "arrow"), load_synthetic(out))


def test_plan_shards():
    shards = plan_shards([8, 1], 5, 2)
    assert [(s.class_id, s.start, s.count) for s in shards] == [(8, 0, 2), (8, 2, 2), (8, 4, 1), (1, 0, 2), (1, 2, 2),
                                                                 (1, 4, 1)]
    assert shards[0].name == "train-00000-of-00006" and shards[-1].name == "train-00005-of-00006"


# ---------------------------------------------------------------------------------------------- bad input
def _cases(tmp_path: Path, tiny: Path, pipe) -> list[tuple[list[str], str, dict]]:
    """(argv, words the message must contain, environment) for the command-line table."""
    model = ["--model", str(tiny)]
    new = str(tmp_path / "new")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    other = tmp_path / "other-run"  # a finished run with guidance 2; the command below asks for 3
    synthesize(pipe, other, 1, ["Bag"], seed=0, fmt="arrow", shard_size=250, progress=False, steps=1,
               guidance=2.0)
    offline = {"HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_any"}
    return [
        (["synthesize", *model, "--per-class", "0", "--out", new], "--per-class: must be >= 1, got 0", {}),
        (["synthesize", *model, "--per-class", "2", "--classes", "spaceship", "--out", new], "unknown class name 'spaceship'", {}),
        (["synthesize", *model, "--per-class", "2", "--classes", "12", "--out", new], "class id 12 is out of range", {}),
        (["synthesize", *model, "--per-class", "2", "--classes", "Bag", "bag", "--out", new], "name a class twice", {}),
        (["synthesize", *model, "--per-class", "2", "--out", str(taken)], f"output folder {taken} is not empty and holds no "
                                                                          "synthesize run", {}),
        (["synthesize", *model, "--per-class", "1", "--classes", "Bag", "--steps", "1", "--guidance", "3",
          "--out", str(other)], "guidance_scale: 2.0 there, 3.0 now", {}),
        (["synthesize", *model, "--per-class", "2", "--out", str(a_file)], f"--out {a_file} is a file", {}),
        (["synthesize", *model, "--per-class", "2", "--format", "zarr", "--out", new], "invalid choice: 'zarr'", {}),
        (["synthesize", *model, "--per-class", "2", "--steps", "500", "--out", new], "num_inference_steps must be an int in 1..100", {}),
        (["synthesize", *model, "--per-class", "2", "--out", new, "--push-to-hub", "someone/data"],
         "--push-to-hub: cannot reach the Hugging Face Hub", offline),
        (["synthesize", *model, "--per-class", "2", "--out", new, "--push-to-hub", "not a repo id"],
         "--push-to-hub 'not a repo id' is not a Hub repo id", {}),
        (["synthesize", "--model", str(tmp_path / "no-model"), "--per-class", "2", "--out", new], "no-model", {}),
        (["synthesize", *model, "--per-class", "2000000", "--out", new], "per_class must be <= 1,000,000", {}),
    ]


CASE_IDS = ["per-class-0", "class-unknown", "class-id-12", "class-twice", "out-not-empty", "out-other-settings", "out-file",
            "format-unknown", "steps-500", "push-offline", "push-bad-id", "model-missing", "per-class-huge"]


@pytest.mark.parametrize("index", range(len(CASE_IDS)), ids=CASE_IDS)
def test_bad_input_is_stopped_before_any_work(index, tmp_path, tiny_saved, pipe, capsys, monkeypatch, unet_calls):
    import huggingface_hub.constants

    argv, words, env = _cases(tmp_path, tiny_saved, pipe)[index]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if env.get("HF_HUB_OFFLINE"):  # read once at import by huggingface_hub
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    unet_calls.clear()  # the calls that made the earlier run
    before = files_under(tmp_path)
    code, text = run_cli(argv, capsys)
    assert code != 0 and "Traceback" not in text, text
    assert words in text, text
    assert len([line for line in text.strip().splitlines() if "error:" in line]) == 1, text
    assert not unet_calls, "an image was generated before the error"
    assert files_under(tmp_path) == before, "something was written"


MIX_CASES = [
    ("mix_ratio=1", "'mix_ratio' must be in [0, 1) (the fraction of each batch drawn from mix_dataset), got 1.0"),
    ("mix_ratio=-0.1", "'mix_ratio' must be in [0, 1)"),
    ("mix_ratio=0.5", "'mix_ratio' is 0.5 but 'mix_dataset' is not set"),
    ("mix_dataset=runs/synth", "'mix_dataset' is 'runs/synth' but 'mix_ratio' is 0"),
    ("mix_dataset=runs/synth mix_ratio=0.01", "rounds to 0 mixed images per batch; it must leave 1..31"),
    ("mix_dataset=runs/synth mix_ratio=0.99", "rounds to 32 mixed images per batch"),
    ("mix_ratio=fast", "'mix_ratio' must be float, got 'fast'"),
]


@pytest.mark.parametrize("overrides,words", MIX_CASES, ids=[c[0] for c in MIX_CASES])
def test_mix_config_is_checked(overrides, words):
    values = {"train_batch_size": 32}
    for item in overrides.split():
        key, value = item.split("=")
        values[key] = value if key == "mix_dataset" or value == "fast" else float(value)
    with pytest.raises(ValueError) as error:
        validate(values)
    assert words in str(error.value)
    assert validate({"train_batch_size": 32, "mix_dataset": "x", "mix_ratio": 0.25}).mix_ratio == 0.25


# ---------------------------------------------------------------------------------------------- mixing in training
def _toy(n: int, value: int, label: int) -> ImageDataset:
    """n 2x2 images; image i is filled with value + i, so a batch says where each image came from."""
    images = (torch.arange(n, dtype=torch.uint8) + value).view(n, 1, 1).expand(n, 2, 2).contiguous()
    return ImageDataset(images, torch.full((n,), label), ["a", "b"], f"toy{value}")


def _ids(images: torch.Tensor, value: int) -> list[int]:
    return [int(round((x.item() + 1) * 127.5)) - value for x in images[:, 0, 0, 0]]


def test_batch_sampler_without_mixing_is_unchanged():
    data = _toy(10, 0, 0)
    sampler = BatchSampler(data, 4, seed=5, hflip=False)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(5 * 7919 + 0)).tolist()
    perm1 = torch.randperm(10, generator=torch.Generator().manual_seed(5 * 7919 + 1)).tolist()
    got = [_ids(sampler.batch(i, torch.Generator())[0], 0) for i in range(3)]
    assert got == [perm[0:4], perm[4:8], perm[8:10] + perm1[0:2]]  # the draws of every run before mixing existed


def test_batch_sampler_mixing_is_addressed_by_batch_index():
    data, mix = _toy(10, 0, 0), _toy(6, 100, 1)
    sampler = BatchSampler(data, 8, seed=5, hflip=True, mix=mix, mix_size=2)
    batches = [sampler.batch(i, torch.Generator().manual_seed(i)) for i in range(6)]
    for _, labels, ids in batches:
        assert labels.tolist() == [0] * 6 + [1] * 2 and len(ids) == 6  # 6 real (their indices), then 2 mixed
    # each epoch of each dataset is a permutation: 6 batches = 36 real draws (3.6 epochs), 12 mixed (2 epochs)
    mixed = [i for images, *_ in batches for i in _ids(images[6:], 100)]
    assert sorted(mixed[:6]) == sorted(mixed[6:]) == list(range(6))
    real = [i for images, _, ids in batches for i in _ids(images[:6], 0)]
    assert real == [int(i) for _, _, ids in batches for i in ids]  # the indices returned are the images drawn
    assert sorted(real[:10]) == sorted(real[10:20]) == list(range(10))
    # a fresh sampler (a resumed run) draws batch 4 without having drawn 0..3, and gets the same batch
    again = BatchSampler(data, 8, seed=5, hflip=True, mix=mix, mix_size=2).batch(4, torch.Generator().manual_seed(4))
    assert torch.equal(again[0], batches[4][0]) and torch.equal(again[1], batches[4][1])
    other_seed = BatchSampler(data, 8, seed=6, hflip=True, mix=mix, mix_size=2).batch(4, torch.Generator().manual_seed(4))
    assert not torch.equal(other_seed[0], batches[4][0])


# ---------------------------------------------------------------------------------------------- subprocesses
def _uninterrupted_run(tiny_saved: Path, tmp_path: Path, capsys) -> tuple[list[str], Path]:
    """The arguments of a 40-image run in 20 shards, slow enough to be killed mid-way, and that run done in one go."""
    args = ["--model", str(tiny_saved), "--per-class", "4", "--shard-size", "2", "--steps", "10", "--batch-size", "1",
            "--seed", "7", "--no-progress"]
    reference = tmp_path / "reference"
    code, text = run_cli(["synthesize", *args, "--out", str(reference)], capsys)
    assert code == 0, text
    return args, reference


@pytest.mark.slow  # subprocess
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tiny_saved, tmp_path, capsys):
    args, reference = _uninterrupted_run(tiny_saved, tmp_path, capsys)
    out = tmp_path / "killed"
    sigkill_when_exists([sys.executable, "-m", "pipeline.cli", "synthesize", *args, "--out", str(out)],
                        out / WORK_DIR / "shards" / "train-00000-of-00020.parquet", ENV, REPO)
    manifest = json.loads((out / MANIFEST).read_text())
    written = len(list((out / WORK_DIR / "shards").glob("train-*.parquet")))
    assert not manifest["complete"] and 1 <= written < 20, written
    code, text = run_cli(["synthesize", *args, "--out", str(out)], capsys)
    assert code == 0 and f"resuming {out}: {2 * written} of 40 images already written" in text, text
    assert_same_dataset(datasets.load_from_disk(str(reference)), datasets.load_from_disk(str(out)))
    assert not (out / WORK_DIR).exists() and json.loads((out / MANIFEST).read_text())["complete"]


SYNTHESIZE = ("-m", "pipeline.cli", "synthesize")


@pytest.mark.slow  # subprocesses: two CPU processes (gloo) under accelerate launch
def test_two_processes_write_the_set_one_process_writes_and_a_killed_one_loses_no_shard(tiny_saved, tmp_path, capsys):
    import signal
    import time

    import psutil

    args, reference = _uninterrupted_run(tiny_saved, tmp_path, capsys)
    out = tmp_path / "two"
    done = subprocess.run(accelerate_launch_2(*SYNTHESIZE, *args, "--out", str(out)), env=ENV, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "by 2 processes" in done.stdout and done.stdout.count("wrote ") == 1  # process 0 alone assembles and reports
    assert_same_dataset(datasets.load_from_disk(str(reference)), datasets.load_from_disk(str(out)))
    assert json.loads((out / MANIFEST).read_text())["stats"]["timed_images"] == 40

    # SIGKILL one worker as soon as a shard of the other's is written: the launch fails, the written shards stay
    killed = tmp_path / "killed"
    launch = subprocess.Popen(accelerate_launch_2(*SYNTHESIZE, *args, "--out", str(killed)), env=ENV, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    shards = killed / WORK_DIR / "shards"
    deadline = time.time() + 300
    while not (shards / "train-00000-of-00020.parquet").exists():
        assert launch.poll() is None and time.time() < deadline, "the launch ended or stalled before its first shard"
        time.sleep(0.02)
    workers = sorted(psutil.Process(launch.pid).children(recursive=True), key=lambda p: p.pid)
    os.kill(workers[-1].pid, signal.SIGKILL)
    assert launch.wait(timeout=120) != 0
    written = len(list(shards.glob("train-*.parquet")))
    assert 1 <= written < 20 and not json.loads((killed / MANIFEST).read_text())["complete"]
    again = subprocess.run(accelerate_launch_2(*SYNTHESIZE, *args, "--out", str(killed)), env=ENV, cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming {killed}: " in again.stdout
    assert_same_dataset(datasets.load_from_disk(str(reference)), datasets.load_from_disk(str(killed)))
    assert not (killed / WORK_DIR).exists()


def _train(out: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(REPO / "train_conditional.py"), "--config", str(REPO / "configs/tiny.yaml"),
            f"output_dir={out}", "sample_every_steps=0", *overrides]


@pytest.mark.needs_data
def test_mixed_training_resumes_bit_identically(pipe, tmp_path):
    from safetensors.torch import load_file

    synthetic = tmp_path / "synthetic"
    synthesize(pipe, synthetic, 3, seed=0, progress=False, steps=1)  # 30 images, all classes
    mixing = (f"mix_dataset={synthetic}", "mix_ratio=0.25", "max_train_steps=12", "checkpointing_steps=4")
    reference = tmp_path / "reference"
    result = subprocess.run(_train(reference, *mixing), env=ENV, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mixing in datasets:" in result.stderr and "8 of the 32 images of every batch" in result.stderr
    assert "8 of every 32 images per batch" in (reference / "README.md").read_text()
    out = tmp_path / "killed"
    sigkill_when_exists(_train(out, *mixing), out / "checkpoints" / "checkpoint-4", ENV, REPO)
    assert not (out / "model_index.json").exists()
    result = subprocess.run(_train(out, *mixing, "--resume_from_checkpoint", "latest"), env=ENV, capture_output=True,
                            text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0 and "resumed from step" in result.stderr, result.stderr[-3000:]
    want = load_file(reference / "unet" / "diffusion_pytorch_model.safetensors")
    got = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


@pytest.mark.needs_data  # the benchmark tests on the real test set
def test_synthetic_data_benchmark_smoke(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.synthetic_data", "--smoke", "--threads", "1",
                             "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out")], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads((tmp_path / "out" / "synthetic_data.json").read_text())
    assert r["smoke"] and r["classifier"]["updates"] > 0 and len(r["seeds"]) == 3
    assert [row["name"] for row in r["rows"]] == [
        "synthetic 10/class (w=1)", "synthetic 10/class (w=2)", "synthetic 10/class (w=4)",  # 2 = the model's default
        "real 10/class", "real all (2,000)", "real 2/class", "real 2/class + synthetic 10/class (w=2)", "real 5/class",
        "real 5/class + synthetic 10/class (w=2)"]
    assert [row["train_images"] for row in r["rows"]] == [100, 100, 100, 100, 2000, 20, 120, 50, 150]
    for row in r["rows"]:
        assert len(row["accuracies"]) == 3 and all(0 <= a <= 1 for a in row["accuracies"])
        assert 0 <= row["mean"] <= 1 and row["std"] >= 0
    assert [d["guidance"] for d in r["synthetic_sets"]] == [1.0, 2.0, 4.0]
    assert all(d["seconds_per_image"] > 0 and d["images"] == 100 for d in r["synthetic_sets"])
    md = (tmp_path / "out" / "synthetic_data.md").read_text()
    assert md.startswith("#") and "cpu_model" in md and "±" in md
    # a rerun reuses the synthesized sets (they are `synthesize` outputs in --work-dir); one seed keeps it short; with
    # the classifiers trained in two processes (--jobs 2) each run still gives what it gave alone
    again = subprocess.run([sys.executable, "-m", "benchmarks.synthetic_data", "--smoke", "--threads", "1",
                            "--seeds", "0", "--jobs", "2", "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out2")],
                           cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "is already complete" in again.stdout + again.stderr, again.stderr[-3000:]
    in_parallel = json.loads((tmp_path / "out2" / "synthetic_data.json").read_text())
    assert in_parallel["classifier"]["parallel_runs"] == 2
    assert [row["accuracies"] for row in in_parallel["rows"]] == [row["accuracies"][:1] for row in r["rows"]]
    # a smoke result never goes into a model card; a real one fills (then replaces) the card's section
    refused = subprocess.run([sys.executable, "-m", "benchmarks.synthetic_data", "--card-from",
                              str(tmp_path / "out" / "synthetic_data.json"), "--model", str(tmp_path)], cwd=REPO, env=ENV,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "a smoke run (tiny random model) is not a measurement" in refused.stderr
    card = tmp_path / "model"
    card.mkdir()
    (card / "README.md").write_text("---\nlicense: mit\n---\n\n# m\n\n## Limitations\n\nsome.\n")
    (tmp_path / "real.json").write_text(json.dumps({**r, "smoke": False}))
    for _ in range(2):
        filled = subprocess.run([sys.executable, "-m", "benchmarks.synthetic_data", "--card-from",
                                 str(tmp_path / "real.json"), "--model", str(card)], cwd=REPO, env=ENV,
                                capture_output=True, text=True, timeout=120)
        assert filled.returncode == 0, filled.stderr[-2000:]
    text = (card / "README.md").read_text()
    assert text.count("## As training data") == 1 and text.index("## As training data") < text.index("## Limitations")
    assert "| real 5/class + synthetic 10/class (w=2) | 150 |" in text and "<!-- synthetic:end -->" in text


@pytest.mark.slow  # subprocess
def test_memory_benchmark_smoke(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks.synthesize_memory", "--smoke",
                             "--out", str(tmp_path)], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads((tmp_path / "synthesize_memory.json").read_text())
    assert len(r["runs"]) == 2 and all(run["peak_rss_mb"] > 0 for run in r["runs"])
    assert r["runs"][1]["images"] > r["runs"][0]["images"]
