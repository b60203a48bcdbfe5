"""The one training loop every training job runs: the class-conditional trainer and the few-step distiller.

`TrainingLoop` holds what every job needs once: the Accelerator, AdamW with a warm-up/decay schedule, the EMA
weights, resuming from a kill-safe checkpoint, the logging window (metrics.jsonl and Accelerate's trackers), the
checkpoints and the final export. A job subclasses it and supplies only what differs:

- `build()`: the module to train and its parameter groups, then calls `prepare(...)`;
- `loss_on(step, micro)`: the loss of one micro-batch, and the sums its log rows report (`window_fields`);
- `export(final_loss, step)`: the folder the run leaves;
- optionally `announce()`, `progress_fields(done)`, `window_fields(sums)`, `after_update(done, start, loss)`,
  `between_updates(done)`, `checkpoint_state()`,
  `on_resume(state)`.

Every random draw of a job comes from `step_generator(seed, step, micro, rank)`, never from global RNG state, so a
run resumed from a checkpoint continues exactly as an uninterrupted run would (bit-identical on the CPU).
A checkpoint holds, besides the model and optimizer, the LR schedule and then each EMA in `emas` order: jobs keep
that order, or older checkpoints would load into the wrong objects.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, TorchDynamoPlugin
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ..io import atomic_write_text
from ..plots import read_metrics
from . import checkpoints
from .files import trim_rows

logger = logging.getLogger("fashion_ddpm.train")


def step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """The generator of every random draw of micro-batch `micro` of update `step` on process `rank`."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 97 + micro) * 1009 + rank)


def hardware(accelerator: Accelerator) -> str:
    """What a run ran on, for its card: the GPUs, or the CPU's cores and threads."""
    if accelerator.device.type == "cuda":
        return f"{accelerator.num_processes} x {torch.cuda.get_device_name(accelerator.device)}"
    return f"{accelerator.num_processes} process(es) on CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def make_accelerator(output_dir: Path, mixed_precision: str, torch_compile: str = "no",
                     report_to: str = "none") -> Accelerator:
    """The Accelerator of a run: a multi-process launch without CUDA trains on the CPU with gloo."""
    # Accelerate only turns a multi-process launch into gloo CPU training when told to use the CPU.
    multi_process_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    compiled = torch_compile != "no"
    accelerator = Accelerator(
        cpu=multi_process_cpu, mixed_precision=mixed_precision,
        dynamo_plugin=TorchDynamoPlugin(backend="inductor" if compiled else "no", mode=torch_compile if compiled else None),
        log_with=None if report_to == "none" else report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    warn_about_cpu_precision(accelerator, mixed_precision)
    return accelerator


def warn_about_cpu_precision(accelerator: Accelerator, mixed_precision: str):
    if accelerator.device.type != "cpu" or mixed_precision == "no":
        return
    if mixed_precision == "fp16":
        logger.warning("mixed_precision=fp16 is ignored on CPU (Accelerate has no CPU fp16 autocast): training runs in fp32.")
        return
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        logger.warning("mixed_precision=bf16 on a CPU without AVX-512 BF16/AMX is emulated and about 8x slower "
                       "than fp32 here; use mixed_precision=no on this machine.")


class TrainingLoop:
    """The loop; a job subclasses it (see the module's docstring). `config` is the job's config: the loop reads its
    optimizer (learning_rate, adam_beta1/2, weight_decay, max_grad_norm, lr_scheduler, lr_warmup_steps), EMA
    (ema_max_decay) and bookkeeping keys (log_every_steps, checkpointing_steps, checkpoints_total_limit)."""

    config_file = "train_config.json"  # the job's config, written beside its metrics
    speed_unit = "images"  # what one update's items are, for the log's `<unit>_per_s`
    accumulation_steps = 1  # micro-batches per update
    report_to = "none"  # Accelerate tracker

    def __init__(self, config, accelerator: Accelerator):
        self.config, self.accelerator = config, accelerator
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.elapsed = 0.0  # training wall time, carried across resumes
        self.window_sums: dict[str, torch.Tensor] = {}  # the job's sums over the updates since the last log row

    # ------------------------------------------------------------------ what a job supplies
    def loss_on(self, step: int, micro: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def export(self, final_loss: float | None, step: int) -> Path:
        raise NotImplementedError

    def announce(self):
        """Log lines saying what the run trains, once it starts."""

    def progress_fields(self, done: int) -> dict:
        """The job's own fields of a log row, besides step, loss, lr, speed and wall time."""
        return {}

    def window_fields(self, sums: dict[str, torch.Tensor]) -> dict:
        """A log row's fields from the job's window sums (summed over the processes)."""
        return {}

    def after_update(self, done: int, start: int, loss: torch.Tensor) -> int | None:
        """Called after each update; returns a new run length to show, or None."""
        return None

    def checkpoint_state(self) -> dict:
        """What a checkpoint's training_state.json keeps of the job, besides step, wall time and loss."""
        return {}

    def on_resume(self, state: dict):
        """Restores what `checkpoint_state` kept."""

    # ------------------------------------------------------------------ set-up
    def prepare(self, module: torch.nn.Module, param_groups: list[dict], ema_powers: list[float], max_steps: int):
        """AdamW over `param_groups`, one EMA of `module` per power in `ema_powers` (in that order: the checkpoint's
        order), the LR schedule over `max_steps` updates; the module and optimizer prepared by Accelerate."""
        config, acc = self.config, self.accelerator
        on_gpu = acc.device.type == "cuda"
        # foreach on a GPU: one fused update instead of ~4 kernel launches per tensor; on the CPU the per-tensor loop
        # is as fast and keeps earlier CPU runs' resumes bit-identical.
        self.emas = [EMAModel(module.parameters(), decay=config.ema_max_decay, use_ema_warmup=True, power=power,
                              foreach=on_gpu) for power in ema_powers]
        for ema in self.emas:
            ema.to(acc.device)  # the shadow weights live beside the trained ones (update and checkpoint there)
        optimizer = torch.optim.AdamW(param_groups, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                                      weight_decay=config.weight_decay)
        self.max_steps = max_steps
        # Stepped once per optimizer update by us (not prepared): Accelerate would step it num_processes times.
        self.lr_scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps,
                                          num_training_steps=max_steps)
        self.raw_optimizer = optimizer
        self.model, self.optimizer = acc.prepare(module, optimizer)
        acc.register_for_checkpointing(self.lr_scheduler)
        for ema in self.emas:
            acc.register_for_checkpointing(ema)

    def set_length(self, max_steps: int):
        """Makes the run `max_steps` updates long: the LR schedule is rebuilt for that length, the learning rate of
        the current update kept (call it where the rate does not depend on the length, e.g. in the warm-up)."""
        config = self.config
        self.max_steps = max_steps
        current = [group["lr"] for group in self.raw_optimizer.param_groups]
        fresh = get_scheduler(config.lr_scheduler, self.raw_optimizer, num_warmup_steps=config.lr_warmup_steps,
                              num_training_steps=max_steps)  # (building it sets the LR of step 0: restored below)
        self.lr_scheduler.lr_lambdas = fresh.lr_lambdas
        for group, lr in zip(self.raw_optimizer.param_groups, current):
            group["lr"] = lr

    def averaged(self, ema: EMAModel | None) -> torch.nn.Module:
        """A copy of the trained module holding `ema`'s weights (the raw weights for None), in eval mode."""
        module = copy.deepcopy(self.accelerator.unwrap_model(self.model))
        if ema is not None:
            ema.copy_to(module.parameters())
        return module.to(self.accelerator.device).eval()

    # ------------------------------------------------------------------ one update
    def update(self, step: int) -> torch.Tensor:
        """One optimizer update; returns its loss as a 0-d tensor on the device (no host sync per step)."""
        acc = self.accelerator
        total = torch.zeros((), device=acc.device)
        for micro in range(self.accumulation_steps):
            last = micro == self.accumulation_steps - 1
            with acc.no_sync(self.model) if not last else contextlib.nullcontext():
                loss, sums = self.loss_on(step, micro)
                loss = loss / self.accumulation_steps
                acc.backward(loss)
            total += loss.detach()
            for name, value in sums.items():
                self.window_sums[name] = self.window_sums.get(name, 0) + value
        acc.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_scheduler.step()
        for ema in self.emas:
            ema.step(self.model.parameters())
        return total

    # ------------------------------------------------------------------ the loop
    def run(self, resume_from_checkpoint: str | None = None) -> Path:
        """Trains from the start or from a checkpoint to `max_steps`, logging and checkpointing, then exports."""
        config, acc = self.config, self.accelerator
        start = self.begin(resume_from_checkpoint)
        self.model.train()
        bar = tqdm(initial=start, total=self.max_steps, disable=not acc.is_local_main_process, desc="train",
                   dynamic_ncols=True)
        self.window_loss, self.window_steps, self.window_start = 0.0, 0, time.perf_counter()
        done = start
        while done < self.max_steps:
            loss = self.update(done)
            done += 1
            bar.update()
            self.window_loss, self.window_steps = self.window_loss + loss, self.window_steps + 1
            length = self.after_update(done, start, loss)
            if length is not None:
                bar.total = length
                bar.refresh()
            if done % config.log_every_steps == 0 or done == self.max_steps:
                bar.set_postfix(self.log_window(done))
            if done % config.checkpointing_steps == 0 or done == self.max_steps:
                checkpoints.save_checkpoint(acc, self.checkpoint_dir, done, config.checkpoints_total_limit, {
                    "wall_time_s": self.elapsed, "loss": loss.item(), **self.checkpoint_state()})
                self.window_start = time.perf_counter()  # checkpoint time is not training throughput
            self.between_updates(done)
        bar.close()
        logger.info("process %d of %d finished %d updates", acc.process_index, acc.num_processes, self.max_steps - start)
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.export(self.final_loss(), self.max_steps)
            logger.info("exported the EMA weights to %s", self.output_dir)
        acc.end_training()
        return self.output_dir

    def between_updates(self, done: int):
        """Work a job does between updates (e.g. sample grids); resets the speed window's clock when it does any."""

    def begin(self, resume_from_checkpoint: str | None) -> int:
        """Resumes (if asked), trims the metrics to the resumed step, writes the config; returns the first step."""
        config, acc = self.config, self.accelerator
        start = 0
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_partial(self.checkpoint_dir)
        if resume_from_checkpoint:
            state = checkpoints.resume(acc, self.checkpoint_dir, resume_from_checkpoint)
            if state is not None:
                start, self.elapsed = state["step"], state.get("wall_time_s", 0.0)
                self.on_resume(state)
                for ema in self.emas:
                    ema.to(acc.device)  # a loaded EMA state may sit on another device than the training
                logger.info("resumed from step %d", start)
        if acc.is_main_process:
            trim_rows(self.output_dir / "metrics.jsonl", start)
            atomic_write_text(self.output_dir / self.config_file, json.dumps(asdict(config), indent=2) + "\n")
        if self.report_to != "none":
            acc.init_trackers("fashion-ddpm", config={k: v for k, v in asdict(config).items()
                                                      if isinstance(v, (int, float, str, bool))})
        self.announce()
        return start

    def elapsed_now(self) -> float:
        """Training wall time up to now (the logged time plus the current window's)."""
        return self.elapsed + time.perf_counter() - self.window_start

    def log_window(self, done: int) -> dict:
        """Logs the mean loss, learning rate, speed and the job's fields of the updates since the last row; returns
        the progress bar's postfix."""
        acc = self.accelerator
        now = time.perf_counter()
        self.elapsed += now - self.window_start
        speed = self.window_steps * self.items_per_update / (now - self.window_start)
        sums = {name: acc.reduce(value, "sum") for name, value in self.window_sums.items()}
        row = {"step": done, "loss": acc.reduce(self.window_loss / self.window_steps, "mean").item(),
               "lr": self.lr_scheduler.get_last_lr()[0], f"{self.speed_unit}_per_s": speed,
               **self.progress_fields(done), "wall_time_s": self.elapsed, **self.window_fields(sums)}
        if acc.is_main_process:
            acc.log({k: v for k, v in row.items() if k != "step"}, step=done)
            with open(self.output_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
        self.window_loss, self.window_steps, self.window_start, self.window_sums = 0.0, 0, now, {}
        return {"loss": f"{row['loss']:.4f}", "lr": f"{row['lr']:.2e}", "img_s": f"{speed:.0f}"}

    @property
    def items_per_update(self) -> int:
        return self.config.train_batch_size * self.accumulation_steps * self.accelerator.num_processes

    def final_loss(self) -> float | None:
        """The card's final loss: the mean of the last logged window (also after a resume at the last update)."""
        path = self.output_dir / "metrics.jsonl"
        rows = read_metrics(path) if path.is_file() else []
        return rows[-1]["loss"] if rows else None
