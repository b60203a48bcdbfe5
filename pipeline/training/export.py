"""Export the EMA pipeline of any checkpoint of a training run, e.g. to compare two runs at an equal number of
updates, or to ship a run with the sampler, steps and guidance chosen by measurement after it finished.

    python scripts/export_checkpoint.py --run runs/cpu --step 1404 --out runs/cpu-at-1404 \
        sample_sampler=dpm++ sample_steps=20 sample_guidance_scale=2 "sample_guidance_interval=[0.17, 0.88]"

The run folder's train_config.json gives the model; `key=value` overrides change only what the export writes (the
sampling defaults, description). The card, sample grid and loss curve are those of the checkpoint's step.

A model that ships with more than training saves also takes, measured after training, its autoguidance guide (a
class-only model's U-Net saved as the `guide_unet` component, `--guide DIR --guide-scale a`) and its style guidance
(`--style-guidance-scale w_s`, a style model's default):

    python scripts/export_checkpoint.py --run runs/default-style --out pretrained/fashion-ddpm \
        sample_guidance_scale=1.5 --guide pretrained/fashion-ddpm-cpu --guide-scale 0.5 --style-guidance-scale 3
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


def export_checkpoint(run_dir: str | Path, step: int | None, out_dir: str | Path, overrides: list[str] = (),
                      guide: str | None = None, guide_scale: float | None = None,
                      style_guidance_scale: float | None = None) -> Path:
    """Writes the pipeline of `run_dir`'s checkpoint at `step` (None: the newest) into `out_dir`; returns it. With
    `guide` (a class-only model folder or Hub id) its U-Net becomes the export's guide at default weight `guide_scale`;
    `style_guidance_scale` becomes a style model's default w_s.

    Raises:
        FileNotFoundError / ValueError: no such run, checkpoint, override key or guide, or a guide or style guidance
            the model cannot take (before any work).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_additions(guide, guide_scale, style_guidance_scale)
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
    if style_guidance_scale is not None and not config.style_attributes:
        raise ValueError(f"--style-guidance-scale needs a style model; {run_dir} trained a class-only one")
    guide_pipe = None
    if guide is not None:
        from ..models import load_pipeline

        guide_pipe = load_pipeline(guide)
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
    if guide_pipe is not None:  # a guide the model cannot take stops here, before anything is written
        from ..models import with_guide

        with_guide(trainer.ema_pipeline(), guide_pipe)
    atomic_write_json(out_dir / "train_config.json", asdict(config))
    trainer.export(rows[-1]["loss"] if rows else None, step)
    shutil.rmtree(out_dir / "logs", ignore_errors=True)
    if guide_pipe is not None or style_guidance_scale is not None:
        add_guidance(out_dir, guide_pipe, guide_scale, style_guidance_scale)
    return out_dir


def check_additions(guide, guide_scale, style_guidance_scale):
    """One-line errors for the guide and style guidance arguments, before any work."""
    from ..checks import is_finite_number

    if (guide is None) != (guide_scale is None):
        raise ValueError(f"a guide needs its weight and a weight its guide: got guide {guide!r}, guide_scale {guide_scale!r}")
    for name, value in (("guide_scale", guide_scale), ("style_guidance_scale", style_guidance_scale)):
        if value is not None and not (is_finite_number(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if guide is not None and Path(guide).is_dir():
        from ..models import check_model_folder

        if (check_model_folder(guide).get("condition_encoder") or [None])[0]:
            raise ValueError(f"guide {guide} is a style or student model; a guide must be a class-only model")


def add_guidance(folder: Path, guide, guide_scale: float | None, style_guidance_scale: float | None):
    """Saves the exported pipeline in `folder` again with `guide`'s U-Net as its guide and the given defaults, and
    renders its card again (the files training wrote beside the weights stay)."""
    from ..io import staged_folder
    from ..models import load_pipeline, with_guide
    from .model_card import rewrite_model_card

    pipe = load_pipeline(folder)
    if style_guidance_scale is not None:
        pipe.register_to_config(default_style_guidance_scale=float(style_guidance_scale))
    if guide is not None:
        pipe = with_guide(pipe, guide, guide_scale)
    with staged_folder(folder) as tmp:
        pipe.save_pretrained(tmp)
    rewrite_model_card(folder, local_path=folder.as_posix())
