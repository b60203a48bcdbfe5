"""The student: the teacher's U-Net with its class embedding moved into a condition encoder that also takes w and the
noise level its step lands on; as a pipeline; or trained on from an earlier student of the same teacher."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ...condition_encoder import FashionStudentConditionEncoder
from ...models import load_pipeline, resolve_model
from ...pipeline_fashion_ddpm import FashionDDPMStudentPipeline, trailing_timesteps
from ...schedulers import make_scheduler
from ..style import StyleDenoiser, from_class_only
from .config import DistillConfig

STYLE_KEYS = ("style_attributes", "style_hidden_dim", "percentile_levels", "percentile_tables")  # a style teacher's


def student_schedules(config: DistillConfig, T: int) -> dict[int, list[int]]:
    """{n: the student's n timesteps}: every (grid_steps / n)-th of the teacher's trailing grid."""
    grid = trailing_timesteps(T, config.grid_steps)
    return {n: grid[::config.grid_steps // n] for n in config.student_steps}


def build_student(teacher, config: DistillConfig):
    """The untrained student: the teacher's U-Net (a class-only teacher's class embedding moved into the encoder) and
    a distilled condition encoder whose distillation MLP starts at zero, so it computes the teacher's conditional
    output; a style teacher's encoder (class embedding, style MLP, tables) is carried over whole. One module to train."""
    T = teacher.scheduler.config.num_train_timesteps
    style = teacher.condition_encoder.config if teacher.style_attributes else {}
    encoder = FashionStudentConditionEncoder(
        len(teacher.class_names) + 1, teacher.unet.config.block_out_channels[0] * 4,
        **{key: style[key] for key in STYLE_KEYS if key in style},
        guidance_range=[config.guidance_values[0], config.guidance_values[-1]],
        guidance_interval=teacher.config.get("default_guidance_interval"),
        step_schedules={str(n): ts for n, ts in student_schedules(config, T).items()},
        distill_hidden_dim=config.distill_hidden_dim, fourier_features=config.fourier_features,
        consistency=config.method in ("consistency", "tuning"))
    if not style:
        return StyleDenoiser(from_class_only(teacher, encoder), encoder)
    missing, unexpected = encoder.load_state_dict(teacher.condition_encoder.state_dict(), strict=False)
    if unexpected or any(not key.startswith("distill_mlp.") for key in missing):
        raise ValueError(f"the teacher's condition encoder does not fit the student's: missing {missing}, unexpected "
                         f"{unexpected}")
    return StyleDenoiser(copy.deepcopy(teacher.unet), encoder)


def student_pipeline(teacher, config: DistillConfig, student):
    """A student module as a pipeline: DDIM (DPM-Solver++ of order 1) on its schedules, `default_steps` of them, and
    the teacher's w (clipped to the distilled range) unless `default_guidance_scale` names another."""
    w = config.default_guidance_scale
    if w is None:
        w = min(max(teacher.config.default_guidance_scale, config.guidance_values[0]), config.guidance_values[-1])
    T = teacher.scheduler.config.num_train_timesteps
    pipe = FashionDDPMStudentPipeline(student.unet, make_scheduler("ddim", teacher.scheduler.config),
                                      class_names=teacher.class_names, default_guidance_scale=w,
                                      default_num_inference_steps=config.default_steps,
                                      default_guidance_interval=teacher.config.get("default_guidance_interval"),
                                      condition_encoder=student.encoder,
                                      default_timesteps=student_schedules(config, T)[config.default_steps])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def start_from(student, config: DistillConfig) -> dict:
    """Loads `config.init_student`'s weights into `student` (after checking it is a student of the same teacher, w
    range and schedules) and returns its distill.json, whose cost the new run's stats add to."""
    source = config.init_student
    earlier = load_pipeline(source)
    record_path = Path(resolve_model(source)) / "distill.json"
    if not earlier.is_distilled or not record_path.is_file():
        raise ValueError(f"init_student {source!r} is not a distilled student (no distilled condition encoder and "
                         "distill.json); give the folder a distill run exported")
    record = json.loads(record_path.read_text())
    if record["config"]["teacher"] != config.teacher:
        raise ValueError(f"init_student {source!r} was distilled from {record['config']['teacher']!r}, not from the "
                         f"teacher {config.teacher!r}")
    for key in ("step_schedules", "guidance_range", "guidance_interval", "distill_hidden_dim", "fourier_features",
                "consistency"):
        theirs, mine = earlier.condition_encoder.config[key], student.encoder.config[key]
        if theirs != mine:
            raise ValueError(f"init_student {source!r} has {key} {theirs!r}, but this config makes {mine!r}")
    student.unet.load_state_dict(earlier.unet.state_dict())
    student.encoder.load_state_dict(earlier.condition_encoder.state_dict())
    return record

