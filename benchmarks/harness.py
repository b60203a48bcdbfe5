"""What every benchmark shares: its flags, the machine description, statistics, worker processes, and `emit`.

A benchmark is a module of this package, run from the repository root:

    python -m benchmarks.NAME --help

Each one builds its command line with `parser` (the shared flags: --model, --clip-model, --threads, --device, --seed,
--out, --smoke, declared once here with one help text each), then declares only its own flags and scenarios, and ends
with `emit`, which prints and writes the result with what every result file records: the benchmark, the command
that made it and the machine (with its load average at start and end). A smoke run's model is `smoke_pipeline`'s (or
`benchmark_pipeline`'s, which loads --model otherwise); a training workload is `training_values` + `trainer_update`.

Deliberately light (no torch / diffusers import at module level) so that `--help`, argument errors and a parent
process that only orchestrates worker subprocesses start quickly.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"  # where committed results live (the default --out of the long benchmarks)
SHIPPED_MODEL_DIR = REPO / "pretrained" / "fashion-ddpm-gpu"  # the default model (pipeline.models.SHIPPED_MODEL_NAME)
WORKER_RESULT = "BENCHMARK_RESULT "  # a worker process's result: the line of its stdout that starts with this


def _tiny_unet() -> dict:
    import yaml

    return yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())["unet"]


TINY_UNET = _tiny_unet()  # the one tiny U-Net of every smoke run (configs/tiny.yaml's, as the tests build)
SMOKE_CONFIG = "configs/tiny.yaml"  # the training config of a smoke run that trains (repository-relative, as results name it)
SMOKE_MODEL = "random init (smoke)"  # what a smoke run's result names as its model
SMOKE_IMAGES = 64  # training images of a smoke training workload
# a tiny model whose own sampling is few-step guided UniPC, as the shipped CPU model's: the few-pass benchmarks' teacher
SMOKE_TEACHER = {"sampler": "unipc", "default_guidance_interval": [0.17, 0.88], "default_num_inference_steps": 4}


# ---------------------------------------------------------------------------------------------------- command line
class BenchmarkParser(argparse.ArgumentParser):
    """An ArgumentParser whose `parse_args` also records `args.module` and `args.command_line`: the command that ran
    the benchmark (`python -m benchmarks.MODULE ARGS`; ARGS = the argv given to `main`, else sys.argv[1:])."""

    def __init__(self, module: str, **kwargs):
        super().__init__(**kwargs)
        self.module = module

    def parse_args(self, args=None, namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        parsed = super().parse_args(argv, namespace)
        parsed.module = self.module
        parsed.command_line = shlex.join(["python", "-m", f"benchmarks.{self.module}", *argv])
        return parsed


def parser(module: str, description: str, *, model: bool | str = False,
           model_default: str = "the shipped model, pretrained/fashion-ddpm-gpu", clip_model: bool = False,
           threads: bool | int = False, device: bool = False, seed: int | None = None, out: bool | Path = False,
           smoke: str | None = None) -> BenchmarkParser:
    """The command line of benchmark `module` with the shared flags it asks for; it adds its own flags to it.

    Args:
        model: True: --model, one saved pipeline folder or Hub id (default None); "several": repeatable (a list).
        model_default: what no --model means, for the help.
        clip_model: --clip-model, the CLIP that scores images (default None: the shipped pretrained/fashion-clip).
        threads: True: --threads, default None (torch's default); a number: that default.
        device: --device (default None: the CPU).
        seed: --seed with this default.
        out: True: --out, default None (the result is only printed); a folder: that default.
        smoke: --smoke, with what the smoke run shrinks (for the help).
    """
    p = BenchmarkParser(module, prog=f"python -m benchmarks.{module}", description=description,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    if model:
        several = model == "several"
        p.add_argument("--model", action="append" if several else "store", default=None,
                       help=f"a saved pipeline folder or Hub id{'; repeat for several' if several else ''} "
                            f"(default: {model_default})")
    if clip_model:
        p.add_argument("--clip-model", default=None, help="CLIP folder or Hub id (default: the shipped pretrained/fashion-clip)")
    if threads is not False:
        default = "torch's default" if threads is True else threads
        p.add_argument("--threads", type=int, default=None if threads is True else threads,
                       help="torch threads of the code measured; a worker or server process also gets them as "
                            f"OMP_NUM_THREADS (default: {default})")
    if device:
        p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    if seed is not None:
        p.add_argument("--seed", type=int, default=seed, help=f"random seed of the images or weights (default {seed})")
    if out is not False:
        p.add_argument("--out", default=None if out is True else str(out),
                       help="folder for the result's <name>.json and <name>.md (default: "
                            f"{'print them only' if out is True else repo_relative(str(out))})")
    if smoke is not None:
        p.add_argument("--smoke", action="store_true", help=f"a seconds-long check of the script, not a measurement: {smoke}")
    return p


# ---------------------------------------------------------------------------------------------------- machine
def repo_relative(path: str) -> str:
    """A path as committed results name it: relative to the repository when inside it."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(REPO).as_posix()
    except ValueError:
        return str(path)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, all) CPU ticks of the whole machine since boot, from Linux's /proc/stat (None elsewhere): steal is the
    time the hypervisor ran something else while this machine's CPUs wanted to run."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) == 8 else 0), sum(fields)


_ticks_at_start: tuple[int, int] | None = None  # machine_info's reading, for emit's steal share over the run


def malloc_name() -> str:
    """The memory allocator of this process: "tcmalloc" or "jemalloc" when one is preloaded (LD_PRELOAD), else
    "glibc". On the CPU it changes throughput at large batches (glibc maps and unmaps big tensors at every pass)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:  # not Linux
        return "unknown"
    return next((name for name in ("tcmalloc", "jemalloc") if f"lib{name}" in maps), "glibc")


def machine_info(torch_threads: int | None = None) -> dict:
    """CPU, cores, library versions, torch threads, the date and the load average now: enough to tell two result files
    apart. `emit` adds the load average at the end."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    info = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "torch_version": _version("torch"),
        "torch_threads": torch_threads,
        "diffusers_version": _version("diffusers"),
        "accelerate_version": _version("accelerate"),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "malloc": malloc_name(),
    }
    if "torch" in sys.modules:  # the exact build in this process (e.g. 2.13.0+cpu)
        info["torch_version"] = sys.modules["torch"].__version__
    if "diffusers" in sys.modules:
        info["diffusers_version"] = sys.modules["diffusers"].__version__
    if hasattr(os, "getloadavg"):
        info["load_average_1m_at_start"] = load_average()
    global _ticks_at_start
    _ticks_at_start = cpu_ticks()
    return info


def torch_machine(threads: int | None = None, device: str | None = None) -> dict:
    """Sets this process's torch threads (when given) and describes the machine, naming `device` when given."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    machine = machine_info(torch.get_num_threads())
    if device:
        machine["device"] = device_label(device)
    return machine


def device_label(device: str) -> str:
    """What a result file names as its device: the GPU's name (e.g. NVIDIA H200) for cuda devices, else the device."""
    if not device.startswith("cuda"):
        return device
    import torch

    return torch.cuda.get_device_name(device)


def rss_mb(field: str = "VmRSS") -> float | None:
    """VmRSS (current) or VmHWM (peak since start / last reset) of this process in MB, from /proc/self/status."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------------------------------- workers
def run_worker(module: str, argv: list[str], what: str, threads: int | None = None, env: dict | None = None) -> dict:
    """Runs `python -m benchmarks.MODULE --worker ARGV` in the repository (OMP_NUM_THREADS = `threads` when given,
    `env` on top of this process's environment) and returns the result it reported with `report_to_parent`; exits
    naming `what` failed otherwise."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--worker", *argv], capture_output=True,
                          text=True, env=env, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(WORKER_RESULT)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"error: worker {what} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len(WORKER_RESULT):])


def add_worker_args(p: argparse.ArgumentParser, names: tuple[str, ...]):
    """The hidden `--worker NAME --spec JSON` by which a benchmark measures each scenario in a fresh process."""
    p.add_argument("--worker", choices=names, help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)


def worker_argv(name: str, spec: dict) -> list[str]:
    """`run_worker`'s argv for worker `name` given `spec` (read back by `ran_as_worker`)."""
    return [name, "--spec", json.dumps(spec)]


def ran_as_worker(args: argparse.Namespace, worker) -> bool:
    """In a worker process (`--worker` given): runs worker(name, spec), which reports with `report_to_parent`, and
    says so; in the benchmark's own process: False, nothing run."""
    if not args.worker:
        return False
    worker(args.worker, json.loads(args.spec))
    return True


def report_to_parent(result: dict):
    """A worker's result, printed for `run_worker`."""
    print(WORKER_RESULT + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------------- models
def smoke_pipeline(seed: int = 0, *, sampler: str | None = None, condition_encoder=None, **defaults):
    """The tiny random pipeline of every smoke run: configs/tiny.yaml's U-Net, its weights drawn from torch seed `seed`,
    its progress bar off. `sampler` swaps in that sampler and `defaults` become the pipeline's own sampling defaults
    (`SMOKE_TEACHER`: a few-step guided teacher); `condition_encoder(TINY_UNET)` builds a style model's encoder."""
    import torch

    from pipeline import FashionDDPMPipeline, use_sampler

    torch.manual_seed(seed)
    parts = {} if condition_encoder is None else {"condition_encoder": condition_encoder(TINY_UNET)}
    pipe = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET, **parts)
    if sampler:
        use_sampler(pipe, sampler)
    if defaults:
        pipe.register_to_config(**defaults)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def benchmark_pipeline(model: str | None, smoke: bool, default: str | Path = SHIPPED_MODEL_DIR, device: str | None = None,
                       **tiny) -> tuple:
    """(the pipeline measured, the name results give it): a smoke run's `smoke_pipeline(**tiny)`, named `SMOKE_MODEL`;
    else `model` (a folder or Hub id; None: `default`) loaded on `device`, named repository-relative."""
    if smoke:
        return smoke_pipeline(**tiny).to(device or "cpu"), SMOKE_MODEL
    from pipeline.models import load_pipeline

    model = str(model or default)
    return load_pipeline(model, device=device), repo_relative(model)


# ---------------------------------------------------------------------------------------------------- training runs
def train_config_file(smoke: bool, full: str = "configs/cpu.yaml") -> str:
    """The training config a benchmark trains from, repository-relative as its result names it: a smoke run's
    `SMOKE_CONFIG`, else `full`."""
    return SMOKE_CONFIG if smoke else full


def training_values(config: str | Path, smoke: bool, batch: int | None = None, default_batch: int = 128) -> dict:
    """A training config file's values as a timed workload (`trainer_update`): one micro-batch of `batch` images per
    update (default: the config's, else `default_batch`), no tracker, no sample grids. A smoke run trains the tiny
    U-Net on `SMOKE_IMAGES` images, batch 8. The caller sets max_train_steps (the learning-rate schedule's length)."""
    import yaml

    values = yaml.safe_load(Path(config).read_text()) or {}
    if smoke:
        values.update(unet=TINY_UNET, max_train_images=SMOKE_IMAGES)
    values.update(train_batch_size=batch or (8 if smoke else values.get("train_batch_size", default_batch)),
                  gradient_accumulation_steps=1, report_to="none", sample_every_steps=0)
    return values


def training_data(config: dict, data: str):
    """The images a training workload trains on, in memory: `data` "auto" the config's Fashion-MNIST (its first
    max_train_images), else (or when it is not installed) as many random uint8 images: the same compute."""
    import torch

    from pipeline.data import ImageDataset, load_dataset
    from pipeline.pipeline_fashion_ddpm import FASHION_MNIST_CLASSES

    n = config.get("max_train_images") or 60_000
    if data == "auto":
        try:
            found = load_dataset(config.get("data_dir"), config.get("dataset"), "train")
            return ImageDataset(found.images[:n], found.labels[:n], found.class_names, found.source)
        except FileNotFoundError:
            pass
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, len(FASHION_MNIST_CLASSES), (n,), generator=g)
    return ImageDataset(images, labels, list(FASHION_MNIST_CLASSES), "synthetic")


def trainer_update(config: dict, data, threads: int | None) -> tuple:
    """(update(step), the U-Net's parameter count): the code train_conditional.py runs, validate(config) -> Trainer ->
    setup -> update(step), training on `data` (already in memory)."""
    import torch

    from pipeline.training import trainer as trainer_module
    from pipeline.training.config import validate

    trainer_module.load_dataset = lambda *a, **k: data  # the data in memory (the same tensor a reference loop uses)
    trainer = trainer_module.Trainer(validate(config))
    trainer.setup()
    if threads:
        torch.set_num_threads(threads)
    trainer.model.train()
    return trainer.update, sum(p.numel() for p in trainer.model.parameters())


def train_run(config) -> Path:
    """Trains a `TrainConfig` into its output_dir, or finishes it after a kill; a finished run of the same config
    (wherever its folder now lies: output_dir is where, not what) is left as it is."""
    from dataclasses import asdict

    from pipeline.training.trainer import Trainer

    folder = Path(config.output_dir)
    saved = folder / "train_config.json"
    wanted = json.loads(json.dumps(asdict(config)))
    if (folder / "model_index.json").is_file() and saved.is_file() and \
            {**json.loads(saved.read_text()), "output_dir": None} == {**wanted, "output_dir": None}:
        return folder
    trainer = Trainer(config)
    trainer.setup()
    return trainer.run(resume_from_checkpoint="latest")


# ---------------------------------------------------------------------------------------------------- output
def median(values) -> float:
    return float(statistics.median(values))


def machine_markdown(machine: dict) -> str:
    keys = ["device", "cpu_model", "cpu_count", "usable_cores", "torch_version", "torch_threads", "diffusers_version",
            "accelerate_version", "python_version", "malloc", "date", "load_average_1m_at_start", "load_average_1m_at_end", "cpu_steal_share"]
    return "\n".join(f"- {k}: {machine[k]}" for k in keys if k in machine)


def markdown_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(name: str, result: dict, markdown: str, args: argparse.Namespace):
    """Completes a result, prints its JSON and Markdown, and with --out writes <out>/<name>.json and <out>/<name>.md.

    `result` must hold "machine" (`machine_info` at the start); emit records the load average at the end in it (and
    on Linux the share of all CPU time the hypervisor stole since machine_info), and
    "benchmark" (the module) and "command" (the command line that ran, `args.command_line`) unless the script set
    them (e.g. a more precise command that names the defaults it resolved). The Markdown gets a "Reproduce" line with
    that command and the machine."""
    result.setdefault("benchmark", args.module)
    command = result.setdefault("command", args.command_line)
    machine = result["machine"]
    machine["load_average_1m_at_end"] = load_average()
    start, end = _ticks_at_start, cpu_ticks()
    if start and end and end[1] > start[1]:  # a slow run on a shared host shows here, not in the load average
        machine["cpu_steal_share"] = round((end[0] - start[0]) / (end[1] - start[1]), 4)
    markdown = "\n\n".join([markdown, f"Reproduce: `{command}`", "Machine:\n" + machine_markdown(machine)])
    text = json.dumps(result, indent=2)
    print(text)
    print()
    print(markdown)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.json").write_text(text + "\n")
        (out / f"{name}.md").write_text(markdown + "\n")
        print(f"\nwrote {out / (name + '.json')} and {out / (name + '.md')}", file=sys.stderr)
