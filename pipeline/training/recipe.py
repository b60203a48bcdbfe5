"""The recipe, end to end: train a config (optionally within a wall-clock budget), sweep the guidance on the sampler it
ships with, choose the default by the project's rule, export the model with it, evaluate the export.

    python scripts/recipe.py --config configs/fashion_mnist.yaml --out runs/recipe --max-train-minutes 8

Every phase writes its result before the next starts and is skipped (or resumed) when run again on the same folder:
training resumes from its newest checkpoint, the sweep keeps the rows it has measured, the export and the evaluation
are redone only when missing. Layout of the output folder:

    run/                   the training run (train_conditional.py's output_dir: checkpoints, metrics, its export)
    guidance_sweep.json    one row per guidance setting: judge accuracy and judge-FID beside their floors
    model/                 the exported pipeline with the chosen guidance as its default (shippable as it is)
    evaluate/              `fashion-ddpm evaluate` of model/ (metrics.json, metrics.md, samples.png)
    recipe.json            what was run and chosen, phase by phase

The rule (`choose_guidance`) is the one every shipped model's default came from: among the rows of the shipped
sampler and step count, the lowest judge-FID whose judge accuracy is at least 0.95.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import check_int
from ..io import atomic_write_json
from ..settings import EVERY_STEP, SamplingSettings

MIN_JUDGE_ACCURACY = 0.95  # the default guidance must keep the classes recognisable: judge accuracy >= this
SWEEP_GUIDANCE = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0)  # w guided for the recipe's interval, and at every step
SWEEP_FILE, RECIPE_FILE = "guidance_sweep.json", "recipe.json"
TRAIN_SCRIPT = Path(__file__).resolve().parents[2] / "train_conditional.py"


def choose_guidance(rows: list[dict], sampler: str, steps: int, min_accuracy: float = MIN_JUDGE_ACCURACY) -> dict | None:
    """The lowest judge-FID row with judge accuracy >= `min_accuracy` among the rows that sample like the model ships
    (its sampler and step count, no rescale); None when no row qualifies. Rows are `sweep_guidance` rows (or
    `benchmarks/quality_vs_steps.py` rows, which have the same keys)."""
    candidates = [r for r in rows if r["sampler"] == sampler and r["steps"] == steps and not r.get("guidance_rescale")
                  and r["judge_accuracy"] >= min_accuracy]
    return min(candidates, key=lambda r: r["judge_fid"], default=None)


def sweep_settings(base: SamplingSettings, guidances=SWEEP_GUIDANCE) -> list[SamplingSettings]:
    """The sweep's settings: each w on `base`'s interval and at every step (w = 1 once: it has no interval)."""
    intervals = [base.interval] if base.interval == EVERY_STEP else [base.interval, EVERY_STEP]
    found = [SamplingSettings(base.sampler, base.steps, w, interval) for interval in intervals for w in guidances]
    return list(dict.fromkeys(found))


def sweep_guidance(pipe, settings: list[SamplingSettings], num_per_class: int, path: str | os.PathLike, seed: int = 0,
                   data_dir: str | None = None, verbose: bool = True) -> list[dict]:
    """Judge accuracy and judge-FID (beside their floors) for each setting, one `evaluate` each, written to `path`
    after every row; rows already in `path` (same N and seed) are kept, not measured again."""
    from ..evaluation.fidelity import evaluate

    path = Path(path)
    done = []
    if path.is_file():
        earlier = json.loads(path.read_text())
        if (earlier.get("num_per_class"), earlier.get("seed")) == (num_per_class, seed):
            done = earlier["rows"]
    rows = {r["setting"]: r for r in done}
    for s in settings:
        if s.label() in rows:
            continue
        r = evaluate(pipe, num_per_class, seed=seed, inception=False, data_dir=data_dir, verbose=verbose, settings=s)
        rows[s.label()] = {"setting": s.label(), **{k: r[k] for k in SWEEP_KEYS}}
        atomic_write_json(path, {"num_per_class": num_per_class, "seed": seed, "rows": list(rows.values())})
        if verbose:
            print(f"{s.label()}: judge accuracy {r['judge_accuracy']:.3f}, judge-FID {r['judge_fid']:.3f} "
                  f"(floor {r['judge_fid_floor']:.3f})", flush=True)
    return [rows[s.label()] for s in settings]


SWEEP_KEYS = ("sampler", "steps", "guidance_scale", "guidance_interval", "guidance_rescale", "num_images",
              "time_per_image_s", "judge_accuracy", "judge_accuracy_floor", "judge_fid", "judge_fid_floor",
              "judge_accuracy_per_class")


@dataclass
class Recipe:
    """A checked recipe run (`prepare_recipe`); `run()` does or finishes every phase."""

    config_path: str | None
    overrides: list[str]
    out: Path
    num_per_class: int = 100
    guidances: tuple[float, ...] = SWEEP_GUIDANCE
    min_accuracy: float = MIN_JUDGE_ACCURACY
    inception: bool = True
    device: str | None = None
    launcher: list[str] = field(default_factory=lambda: [sys.executable])
    data_dir: str | None = None
    log: dict = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.out / "run"

    def _phase(self, name: str, began: float, **info):
        self.log.setdefault("phases", {})[name] = {"seconds": round(time.perf_counter() - began, 1), **info}
        atomic_write_json(self.out / RECIPE_FILE, self.log)
        print(f"recipe: {name} done in {time.perf_counter() - began:.0f} s", flush=True)

    def train(self):
        """train_conditional.py into run/ (resuming from its newest checkpoint); its own process, as a user runs it."""
        began = time.perf_counter()
        command = [*self.launcher, str(TRAIN_SCRIPT), *(["--config", self.config_path] if self.config_path else []),
                   *self.overrides, f"output_dir={self.run_dir}", "--resume_from_checkpoint", "latest"]
        print(f"recipe: training: {shlex.join(command)}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise RuntimeError(f"training failed (see its output above); rerun the same command to resume it from "
                               f"{self.run_dir / 'checkpoints'}")
        self._phase("train", began, command=shlex.join(command))

    def sweep(self) -> dict:
        from ..models import load_pipeline

        began = time.perf_counter()
        pipe = load_pipeline(self.run_dir, device=self.device)
        base = SamplingSettings.resolve(pipe)
        rows = sweep_guidance(pipe, sweep_settings(base, self.guidances), self.num_per_class, self.out / SWEEP_FILE,
                              data_dir=self.data_dir)
        best = choose_guidance(rows, base.sampler, base.steps, self.min_accuracy)
        if best is None:
            raise RuntimeError(f"no guidance in {[r['setting'] for r in rows]} reached judge accuracy {self.min_accuracy} "
                               f"({self.out / SWEEP_FILE}); train longer or sweep larger w (--guidance)")
        self._phase("sweep", began, rows=len(rows), chosen=best["setting"], judge_accuracy=best["judge_accuracy"],
                    judge_fid=best["judge_fid"], judge_fid_floor=best["judge_fid_floor"])
        return best

    def export(self, best: dict):
        from .export import export_checkpoint

        began = time.perf_counter()
        chosen = SamplingSettings.from_json(best)
        interval = "null" if chosen.every_step else f"[{chosen.interval[0]:g}, {chosen.interval[1]:g}]"
        export_checkpoint(self.run_dir, None, self.out / "model", [f"sample_guidance_scale={chosen.guidance:g}",
                                                                    f"sample_guidance_interval={interval}"])
        self._phase("export", began, model=str(self.out / "model"), settings=chosen.label())

    def evaluate(self):
        from ..evaluation.fidelity import evaluate, metrics_markdown
        from ..models import load_pipeline
        from .model_card import fill_metrics

        began = time.perf_counter()
        model = self.out / "model"
        pipe = load_pipeline(model, device=self.device)
        command = shlex.join(["fashion-ddpm", "evaluate", "--model", str(model), "--num-per-class", str(self.num_per_class),
                              *([] if self.inception else ["--no-inception"])])
        result = evaluate(pipe, self.num_per_class, inception=self.inception, data_dir=self.data_dir,
                          out_dir=self.out / "evaluate", command=command, model_name=str(model))
        fill_metrics(model / "README.md", metrics_markdown(result), result)
        self._phase("evaluate", began, judge_accuracy=result["judge_accuracy"], judge_fid=result["judge_fid"],
                    judge_fid_floor=result["judge_fid_floor"], inception_fid=result["inception_fid"],
                    inception_fid_floor=result["inception_fid_floor"])

    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        earlier = self.out / RECIPE_FILE
        self.log = json.loads(earlier.read_text()) if earlier.is_file() else {}
        self.log.update(config=self.config_path, overrides=self.overrides, num_per_class=self.num_per_class,
                        guidances=list(self.guidances), min_judge_accuracy=self.min_accuracy)
        self.train()
        best = self.sweep()
        exported = self.log.get("phases", {}).get("export", {}).get("settings")
        if exported != SamplingSettings.from_json(best).label() or not (self.out / "model" / "model_index.json").is_file():
            self.export(best)
            (self.out / "evaluate" / "metrics.json").unlink(missing_ok=True)  # it measured another export
        if not (self.out / "evaluate" / "metrics.json").is_file():
            self.evaluate()
        return self.log


def prepare_recipe(config_path: str | None, overrides: list[str], out: str | os.PathLike, *, num_per_class: int = 100,
                   guidances=SWEEP_GUIDANCE, min_accuracy: float = MIN_JUDGE_ACCURACY, inception: bool = True,
                   device: str | None = None, launcher: str | None = None, data_dir: str | None = None) -> Recipe:
    """Checks a recipe request before any work: the config and overrides (as train_conditional.py would), the sweep,
    the output folder, the device, and that the data the evaluation needs is here.

    Raises:
        ValueError / FileNotFoundError: naming the bad value and what is accepted.
    """
    from .config import load_config

    if any(o.split("=", 1)[0].strip() == "output_dir" for o in overrides):
        raise ValueError("output_dir is set by the recipe (OUT/run); give --out instead")
    load_config(config_path, overrides)  # the same checks as train_conditional.py, before anything runs
    check_int(num_per_class, "--num-per-class")
    guidances = tuple(float(w) for w in guidances)
    if not guidances:
        raise ValueError("--guidance needs at least one w")
    for w in guidances:
        SamplingSettings("ddpm", 1, w).check()
    if not 0 <= min_accuracy <= 1:
        raise ValueError(f"--min-accuracy must be in [0, 1], got {min_accuracy}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    from ..evaluation.inception import reference_available
    from ..models import check_device

    check_device(device)
    reference_available([("test", 2, "any"), ("train", 2, "any")], data_dir)
    if inception:
        from ..evaluation.inception import inception_weights_path

        inception_weights_path()
    return Recipe(config_path, list(overrides), out, num_per_class, guidances, min_accuracy, inception, device,
                  shlex.split(launcher) if launcher else [sys.executable], data_dir)
