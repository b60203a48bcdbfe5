#!/usr/bin/env python
"""One GPU lease, one command: train the GPU recipe for as long as a wall-clock budget allows, choose its guidance by
measurement, export it, and measure it as training data (CAS). Everything the lease produces comes back in one bundle.

A lease here is short (minutes) and a second one is not guaranteed, so the order is: cheap checks of every GPU code
path first (a 60-update probe that also measures throughput), then training sized to the time left, then the
measurements, writing the bundle after each phase so that a phase that fails or runs out of time loses only itself.

    python scripts/gpu_session.py --out $OUT --budget 560                 # on the GPU machine (see docs/gpu.md)
    python scripts/gpu_session.py --out /tmp/o --budget 300 --tiny         # the same steps with configs/tiny.yaml, CPU ok

Phases (each a subprocess running the project's own commands, so the GPU run is what a user would run):
  1. probe: `train_conditional.py --config CONFIG max_train_steps=60` -> images/s, and a check that training, export,
     `benchmarks/quality_vs_steps.py` and `benchmarks/synthetic_data.py` run on this device (tiny sizes); then
     `benchmarks/train_throughput.py` (the project's loop vs a bare reference loop on this device);
  2. train: CONFIG with max_train_steps = what fits in the budget (capped at the config's num_epochs);
  3. guidance sweep: judge-only rows at N = 1000 on the default sampler (`quality_vs_steps.py --device`), the default
     chosen as the lowest judge-FID with judge accuracy >= 0.95 (the rule of issue 9); re-export with it;
  4. CAS: `synthetic_data.py --device` on the exported model (and, time permitting, on the shipped CPU model).
The bundle (`bundle-*.tgz.part-*` under --out) holds the exported model, the result files and this log.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SWEEP_W = (1, 1.25, 1.5, 2, 2.5, 3, 4)  # every step
INTERVAL_W = (1.5, 2, 2.5, 3, 4)  # guided only for t/T in INTERVAL
INTERVAL = (0.17, 0.88)
PART_BYTES = 15 * 2**20  # files coming back from the device machine are limited to 16 MiB each


class Session:
    def __init__(self, args):
        self.args, self.start = args, time.monotonic()
        self.out = Path(args.out).resolve()
        self.work = Path(args.work).resolve()
        self.results = self.work / "results"
        for folder in (self.out, self.work, self.results):
            folder.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "session.log"
        self.summary: dict = {"phases": {}, "budget_s": args.budget, "config": args.config}
        # scripts/*.py import `pipeline` from this checkout, installed or not
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.start)

    def log(self, message: str):
        line = f"[{time.monotonic() - self.start:7.1f} s] {message}"
        print(line, flush=True)
        with open(self.log_path, "a") as f:
            f.write(line + "\n")

    def run(self, name: str, command: list[str], timeout: float) -> bool:
        """Runs one phase's command with a timeout; its output goes to the log; True when it succeeded."""
        timeout = max(5.0, min(timeout, self.left() - 5))
        self.log(f"{name}: {' '.join(command)} (timeout {timeout:.0f} s)")
        began = time.monotonic()
        with open(self.log_path, "a") as f:
            try:
                rc = subprocess.run(command, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, env=self.env).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        seconds = round(time.monotonic() - began, 1)
        self.summary["phases"][name] = {"rc": rc, "seconds": seconds}
        self.log(f"{name}: rc {rc} after {seconds} s")
        return rc == 0

    def bundle(self, name: str, paths: list[Path]):
        """tar.gz of `paths` (checkpoints left out) split into parts small enough to come back."""
        (self.work / "summary.json").write_text(json.dumps(self.summary, indent=2))
        archive = self.work / f"{name}.tgz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in [*paths, self.work / "summary.json", self.log_path]:
                if path.exists():
                    tar.add(path, arcname=path.name, filter=lambda m: None if "/checkpoints" in m.name or "/logs" in m.name else m)
        data = archive.read_bytes()
        for old in self.out.glob(f"{name}.tgz.part-*"):
            old.unlink()
        for i in range(0, len(data), PART_BYTES):
            (self.out / f"{name}.tgz.part-{i // PART_BYTES:02d}").write_bytes(data[i:i + PART_BYTES])
        self.log(f"bundle {name}: {len(data) / 2**20:.1f} MiB in {math.ceil(len(data) / PART_BYTES)} part(s)")


def python(*args) -> list[str]:
    return [sys.executable, *map(str, args)]


def last_speed(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return rows[-1]["images_per_s"]


def choose_default(sweep_json: Path, sampler: str, steps: int, min_accuracy: float = 0.95) -> dict | None:
    """Lowest judge-FID with judge accuracy >= 0.95 among the rows of the default sampler (issue 9's rule)."""
    rows = [r for r in json.loads(sweep_json.read_text())["rows"]
            if r["sampler"] == sampler and r["steps"] == steps and not r.get("guidance_rescale")]
    ok = [r for r in rows if r["judge_accuracy"] >= min_accuracy]
    return min(ok, key=lambda r: r["judge_fid"]) if ok else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the bundle parts and the log ($OUT on the device machine)")
    p.add_argument("--work", default="/tmp/gpu-session", help="working folder (runs, synthetic sets)")
    p.add_argument("--budget", type=float, default=560, help="wall-clock seconds for everything")
    p.add_argument("--config", default="configs/fashion_mnist.yaml")
    p.add_argument("--device", default="cuda")
    p.add_argument("--post-reserve", type=float, default=230, help="seconds kept for the sweep, export and CAS")
    p.add_argument("--cas-updates", type=int, default=3000)
    p.add_argument("--cas-jobs", type=int, default=6, help="classifier runs at once in the CAS (synthetic_data.py --jobs)")
    p.add_argument("--cas-also", default="pretrained/fashion-ddpm-gpu",
                   help="a second model measured by the same CAS if time is left (the model shipped before this lease)")
    p.add_argument("--speed", type=float, default=None, help="training images/s known from an earlier lease on this "
                   "kind of GPU: skips the probe and its checks (saves ~40 s of the lease for training)")
    p.add_argument("--no-throughput", action="store_true", help="skip benchmarks/train_throughput.py (already measured)")
    p.add_argument("--tiny", action="store_true", help="configs/tiny.yaml and tiny measurement sizes (a dry run)")
    args = p.parse_args(argv)
    if args.tiny:
        args.config = "configs/tiny.yaml"
    s = Session(args)
    import yaml

    recipe = yaml.safe_load((REPO / args.config).read_text())
    sampler, steps = recipe.get("sample_sampler", "ddpm"), recipe.get("sample_steps", 10)
    per_class = 2 if args.tiny else 100
    cas_size = ["--per-class", "5", "--updates", "5", "--seeds", "0,1", "--real-sizes", "1"] if args.tiny else \
               ["--per-class", "1000", "--updates", str(args.cas_updates), "--seeds", "0,1,2", "--real-sizes", "10,100"]
    s.log(f"device {args.device}, budget {args.budget:.0f} s, config {args.config}")
    common = ["report_to=none", "sample_every_steps=0"]

    # 1. probe: throughput, and every GPU code path on a 60-update model (unless --speed says the speed is known)
    probe = s.work / "probe"
    probe_steps = 8 if args.tiny else 60
    if args.speed:
        speed, checks_ok = args.speed, True
        s.log(f"probe skipped: {speed:.0f} images/s given by --speed")
    elif not s.run("probe", python("train_conditional.py", "--config", args.config, f"output_dir={probe}", *common,
                                 f"max_train_steps={probe_steps}", f"checkpointing_steps={probe_steps}",
                                 "log_every_steps=" + str(probe_steps // 3)), 120):
        s.bundle("bundle-model", [])
        raise SystemExit("probe failed: see the log")
    else:
        speed = last_speed(probe)
        s.summary["probe_images_per_s"] = speed
        s.log(f"probe: {speed:.0f} images/s at batch {recipe.get('train_batch_size')}")
        checks_ok = s.run("check-sweep", python("benchmarks/quality_vs_steps.py", "--model", probe, "--device", args.device,
                                            "--settings", f"{sampler}:{steps}:2", "--num-per-class", 1, "--no-inception",
                                            "--out", s.work / "check", "--name", "check"), 60)
        checks_ok &= s.run("check-cas", python("benchmarks/synthetic_data.py", "--model", probe, "--device", args.device,
                                               "--per-class", 2, "--updates", 3, "--seeds", 0, "--real-sizes", 1,
                                               "--guidance", "default", "--work-dir", s.work / "check-syn", "--jobs", 2,
                                               "--out", s.work / "check", "--name", "check-cas"), 90)

    # training throughput of the project's loop vs a bare reference loop on this device (issue 9 asks for both)
    if not args.no_throughput:
        s.run("throughput", python("benchmarks/train_throughput.py", "--config", args.config, "--steps", 3 if args.tiny else 40,
                                   "--warmup", 2 if args.tiny else 10, "--rounds", 1, "--out", s.results / "throughput"), 90)

    # 2. train for the time left (minus the measurements' reserve), at most the recipe's epochs
    batch = recipe.get("train_batch_size", 128)
    fixed_overhead = 30  # process start, data, export (grid, card) of the real run
    seconds = s.left() - args.post_reserve - fixed_overhead
    data_size = recipe.get("max_train_images") or 60000
    cap = recipe.get("max_train_steps") or recipe.get("num_epochs", 1) * (data_size // batch)
    train_steps = int(max(1, min(cap, 0.92 * seconds * speed / batch)))
    s.summary.update(train_steps=train_steps, train_epochs=round(train_steps * batch / data_size, 2), cap_steps=cap)
    s.log(f"train: {train_steps} updates of {batch} ({train_steps * batch / data_size:.1f} epochs; recipe {cap}) "
          f"in ~{train_steps * batch / speed:.0f} s")
    run = s.work / "run"
    epochs = train_steps * batch / data_size
    unet = recipe.get("unet", {}).get("block_out_channels")
    description = (f'description="GPU recipe ({args.config}), UNet {tuple(unet) if unet else "default"}, '
                   f'{recipe.get("prediction_type", "epsilon")}, {epochs:.1f} epochs ({train_steps} updates of {batch}) in one '
                   f'{args.budget:.0f}-second GPU session"')
    trained = s.run("train", python("train_conditional.py", "--config", args.config, f"output_dir={run}", *common, description,
                                    f"max_train_steps={train_steps}", f"checkpointing_steps={train_steps}",
                                    "checkpoints_total_limit=1"), s.left() - 60)
    if not trained:
        s.bundle("bundle-model", [run])
        raise SystemExit("training failed: see the log")
    s.bundle("bundle-model", [run])

    # 3. guidance sweep on the default sampler (judge only; Inception needs weights the device machine lacks)
    settings = [f"ddpm:100:{w:g}:i={INTERVAL[0]}-{INTERVAL[1]}" for w in (1.5, 2)] if not args.tiny else []
    settings += [f"{sampler}:{steps}:{w:g}:i=0-1" for w in SWEEP_W]
    settings += [f"{sampler}:{steps}:{w:g}:i={INTERVAL[0]}-{INTERVAL[1]}" for w in INTERVAL_W]
    sweep_name = "gpu_guidance_sweep"
    final = run
    if checks_ok and s.run("sweep", python("benchmarks/quality_vs_steps.py", "--model", run, "--device", args.device,
                                           "--settings", ",".join(settings), "--num-per-class", per_class,
                                           "--no-inception", "--out", s.results, "--name", sweep_name), 120):
        best = choose_default(s.results / f"{sweep_name}.json", sampler, steps, 0.0 if args.tiny else 0.95)
        s.summary["chosen_default"] = best and {k: best[k] for k in ("setting", "judge_accuracy", "judge_fid", "judge_fid_floor")}
        s.log(f"chosen default: {best and best['setting']}")
        if best is not None:
            interval = best["guidance_interval"]
            interval = "null" if not interval or tuple(interval) == (0, 1) else f"[{interval[0]:g}, {interval[1]:g}]"
            final = s.work / "final"
            if not s.run("export", python("scripts/export_checkpoint.py", "--run", run, "--out", final, description,
                                          f"sample_guidance_scale={best['guidance']:g}",
                                          f"sample_guidance_interval={interval}"), 60):
                final = run
    s.bundle("bundle-model", [final, s.results])

    # 4. CAS on the exported model, then (if time is left) on --cas-also with the same classifier budget; a parallel
    # run that fails (not one that runs out of time) is retried one classifier at a time, reusing its synthetic sets
    for name, model in (("synthetic_data_gpu", final), ("synthetic_data_previous", REPO / args.cas_also)):
        if not checks_ok or s.left() < 60:
            s.log(f"{name}: skipped ({s.left():.0f} s left, checks {'passed' if checks_ok else 'failed'})")
            continue
        cas = python("benchmarks/synthetic_data.py", "--model", model, "--device", args.device, *cas_size,
                     "--work-dir", s.work / "syn", "--out", s.results, "--name", name)
        if not s.run(name, [*cas, "--jobs", str(args.cas_jobs)], s.left() - 10) and s.summary["phases"][name]["rc"] != "timeout":
            s.run(name + "-one-at-a-time", cas, s.left() - 10)
        s.bundle("bundle-results", [s.results])
    s.log("done")


if __name__ == "__main__":
    main()
