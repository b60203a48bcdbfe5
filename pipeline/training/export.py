"""Export the EMA pipeline of any checkpoint of a training run, e.g. to compare two runs at an equal number of
updates, or to ship a run with the sampler, steps and guidance chosen by measurement after it finished.

    python scripts/export_checkpoint.py --run runs/cpu --step 1404 --out runs/cpu-at-1404 \
        sample_sampler=dpm++ sample_steps=20 sample_guidance_scale=2 "sample_guidance_interval=[0.17, 0.88]"

The run folder's train_config.json gives the model; `key=value` overrides change only what the export writes (the
sampling defaults, description). The card, sample grid and loss curve are those of the checkpoint's step.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from ..io import atomic_write_json, atomic_write_text
from . import checkpoints
from .config import parse_override, validate

EXPORT_ONLY_KEYS = {"sample_sampler", "sample_steps", "sample_guidance_scale", "sample_guidance_interval",
                    "sample_images_per_class", "description"}


def export_checkpoint(run_dir: str | Path, step: int | None, out_dir: str | Path, overrides: list[str] = ()) -> Path:
    """Writes the pipeline of `run_dir`'s checkpoint at `step` (None: the newest) into `out_dir`; returns it.

    Raises:
        FileNotFoundError / ValueError: no such run, checkpoint or override key (before any work).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config_path = run_dir / "train_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run folder (no train_config.json)")
    found = checkpoints.list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise FileNotFoundError(f"{run_dir / 'checkpoints'} holds no finished checkpoint")
    steps = {int(p.name.split("-")[1]): p for p in found}
    if step is not None and step not in steps:
        raise ValueError(f"no checkpoint-{step} in {run_dir / 'checkpoints'}; found steps {sorted(steps)}")
    step = max(steps) if step is None else step
    values = json.loads(config_path.read_text())
    values.setdefault("loss_weighting", "none")  # a run from before the key trained with the plain loss
    for text in overrides:
        key, value = parse_override(text)
        if key not in EXPORT_ONLY_KEYS:
            raise ValueError(f"override {key!r} would change the model; export accepts only {sorted(EXPORT_ONLY_KEYS)}")
        values[key] = value
    config = validate({**values, "output_dir": str(out_dir), "report_to": "none"})
    if out_dir.resolve() == run_dir.resolve():
        raise ValueError("--out must differ from --run (the run's metrics and checkpoints stay untouched)")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["step"] <= step]
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    from .trainer import Trainer  # torch / diffusers only now

    trainer = Trainer(config)
    trainer.setup()
    state = checkpoints.resume(trainer.accelerator, run_dir / "checkpoints", str(steps[step]))
    trainer.elapsed = state.get("wall_time_s", 0.0)
    atomic_write_json(out_dir / "train_config.json", asdict(config))
    trainer.export(rows[-1]["loss"] if rows else None, step)
    shutil.rmtree(out_dir / "logs", ignore_errors=True)
    return out_dir
