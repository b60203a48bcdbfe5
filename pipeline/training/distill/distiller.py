"""The distillation job on the shared training loop (`..loop`): the teacher's trajectories first, then updates of one
student pass each (two for a consistency student), EMA weights, kill-safe checkpoints, and the exported student.

    fashion-ddpm distill --config configs/distill.yaml [key=value ...]
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ...io import staged_folder
from ...models import load_pipeline
from ...plots import plot_loss_curve
from ...settings import SamplingSettings
from ...visualize import sample_grid
from .. import checkpoints
from ..loop import TrainingLoop, hardware, make_accelerator, step_generator
from .card import cumulative_stats, write_record
from .config import DistillConfig
from .student import build_student, start_from, student_pipeline
from .targets import PairSampler
from .trajectories import load_trajectories, make_trajectories
from .tuning import TuningPairs

logger = logging.getLogger("fashion_ddpm.distill")


class Distiller(TrainingLoop):
    """Trains a few-step student of a class-only teacher on the teacher's stored trajectories."""

    config_file = "distill_config.json"
    speed_unit = "pairs"

    def __init__(self, config: DistillConfig):
        super().__init__(config, make_accelerator(Path(config.output_dir), config.mixed_precision))

    def setup(self):
        config, acc = self.config, self.accelerator
        self.teacher = load_pipeline(config.teacher)
        if self.teacher.is_distilled:
            raise ValueError(f"teacher {config.teacher!r} is a distilled student; distil a class or style model")
        self.teacher.set_progress_bar_config(disable=True)
        self.teacher.to(acc.device)
        self.T = self.teacher.scheduler.config.num_train_timesteps
        torch.manual_seed(config.seed)  # the zero-initialised MLP's first layer
        student = build_student(self.teacher, config)
        self.prior = start_from(student, config) if config.init_student else None  # checked before any trajectory
        if acc.is_main_process:
            checkpoints.remove_partial(self.checkpoint_dir)
        if config.method == "tuning":  # pairs made on the fly from training images: no trajectories
            self.pairs = TuningPairs(self.teacher, config)
        else:
            make_trajectories(self.teacher, config, acc.process_index, acc.num_processes)
            acc.wait_for_everyone()
            self.pairs = PairSampler(config, self.T, load_trajectories(config))
        self.prepare(student, [{"params": list(student.parameters())}], [config.ema_power], config.max_train_steps)
        self.ema = self.emas[0]
        self.alphas_cumprod = self.teacher.scheduler.alphas_cumprod.to(acc.device)

    def announce(self):
        config = self.config
        source = "training images" if config.method == "tuning" else "trajectories"
        logger.info("distilling %s into %s steps (%s): %d %s, %d updates of %d pairs", config.teacher,
                    config.student_steps, config.method, len(self.pairs), source, config.max_train_steps,
                    config.train_batch_size)

    def loss_on(self, step: int, micro: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The mean loss of a batch of pairs, and per pair group (step count or chain link) its summed loss and size."""
        acc, config = self.accelerator, self.config
        generator = step_generator(config.seed, step, micro, acc.process_index)
        per_pair, kinds = self.pairs.losses(self.model, acc.unwrap_model(self.model), config.train_batch_size,
                                            generator, self.alphas_cumprod, step / self.max_steps)
        each = range(len(self.pairs.names))
        group_loss = torch.stack([(per_pair.detach() * (kinds == k)).sum() for k in each])
        group_size = torch.stack([(kinds == k).sum() for k in each]).float()
        return per_pair.mean(), {"group_loss": group_loss, "group_size": group_size}

    def window_fields(self, sums: dict[str, torch.Tensor]) -> dict:
        """The window's loss of each pair group that was drawn (`loss_4_steps`, `loss_from_t999`, ...)."""
        totals, sizes = sums["group_loss"].tolist(), sums["group_size"].tolist()
        return {f"loss_{name}": total / size for name, total, size in zip(self.pairs.names, totals, sizes) if size}

    def student_pipeline(self):
        """The EMA student as a pipeline."""
        return student_pipeline(self.teacher, self.config, self.averaged(self.ema))

    def export(self, final_loss: float | None, step: int) -> Path:
        pipe = self.student_pipeline()
        settings = SamplingSettings.resolve(pipe)
        with staged_folder(self.output_dir) as tmp:
            pipe.save_pretrained(tmp)
            (tmp / "samples").mkdir()
            sample_grid(pipe, self.config.sample_images_per_class, seed=0, settings=settings,
                        title=f"distilled student, {settings.describe()}").save(tmp / "samples" / "final.png")
            plot_loss_curve(self.output_dir / "metrics.jsonl", tmp / "samples" / "loss_curve.png")
            write_record(tmp, self.config, self.stats(pipe, final_loss, step), local_path=self.output_dir.as_posix())
        return self.output_dir

    def stats(self, pipe, final_loss: float | None, step: int) -> dict:
        """The run's cost and size, with the stages it trained on from added (`cumulative_stats`)."""
        parameters = sum(p.numel() for p in pipe.unet.parameters()) + sum(p.numel() for p in pipe.condition_encoder.parameters())
        stored = getattr(self.pairs, "data", None)  # a tuning run stores no trajectories
        stats = {"updates": step, "pairs_seen": step * self.items_per_update,
                 "trajectories": 0 if stored is None else len(stored["seeds"]),
                 "wall_time_s": round(self.elapsed, 1), "final_loss": final_loss,
                 "trajectory_time_s": 0.0 if stored is None else round(float(stored["seconds"].sum()), 1),
                 "hardware": hardware(self.accelerator), "parameters": parameters}
        return cumulative_stats(self.prior, stats, self.config)


def distill(config: DistillConfig, resume_from_checkpoint: str | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    distiller = Distiller(config)
    distiller.setup()
    return distiller.run(resume_from_checkpoint)
