"""The training loop behind `train_conditional.py`: noise-prediction MSE with label dropout, Accelerate, EMA.

Every random draw (batch order, noise, timesteps, label dropout, flips) comes from a generator seeded by
(seed, step, micro-batch, rank), never from global RNG state, so a run resumed from a checkpoint continues exactly as
an uninterrupted run would: the final weights are bit-identical (on the CPU; GPU kernels are not bit-reproducible).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, TorchDynamoPlugin
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel, compute_snr
from tqdm.auto import tqdm

from ..data import ImageDataset, load_dataset, to_model_range
from ..hub import check_base_model, check_hub_access, push_model
from ..io import move_into
from ..pipeline_fashion_ddpm import DEFAULT_UNET_CONFIG, FashionDDPMPipeline
from ..schedulers import make_scheduler
from ..settings import EVERY_STEP
from ..visualize import sample_grid
from . import checkpoints
from .clip_loss import ClipGuidanceLoss
from .config import TrainConfig, mix_batch_size
from .files import trim_rows
from .model_card import write_model_card
from .plots import plot_loss_curve
from .style import StyleDenoiser, build_encoder, from_class_only

logger = logging.getLogger("fashion_ddpm.train")
EXTRA_EMA_PREFIX = "ema-power-"  # the folders of the side-by-side EMAs (config ema_extra_powers), not the model
PROBE_WARMUP_UPDATES = 3  # updates before the wall-clock probe starts timing (compilation, graph capture, autotuning)


class BatchSampler:
    """Deterministic batches from in-memory datasets: a fresh permutation per epoch, addressed by position.

    With `mix` (config `mix_dataset`), `mix_size` of the `batch_size` images of every batch come from it, taken the
    same way from its own sequence of permutations (a separate seed stream), and the other images from `data`. Batch
    `index` depends only on (seed, index), so a resumed run draws exactly the batches an uninterrupted one does.
    """

    def __init__(self, data: ImageDataset, batch_size: int, seed: int, hflip: bool, mix: ImageDataset | None = None,
                 mix_size: int = 0):
        self.data, self.batch_size, self.seed, self.hflip = data, batch_size, seed, hflip
        self.mix, self.mix_size = mix, (mix_size if mix is not None else 0)
        self._perms: dict[tuple[int, int], torch.Tensor] = {}  # (stream, epoch) -> permutation

    def _perm(self, stream: int, epoch: int, n: int) -> torch.Tensor:
        key = (stream, epoch)
        if key not in self._perms:
            self._perms = {k: p for k, p in self._perms.items() if k[0] != stream or k[1] >= epoch - 1}
            seed = self.seed * 7919 + epoch + stream * 2**40  # stream 0 (the data) as before mixing existed
            self._perms[key] = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return self._perms[key]

    def _ids(self, stream: int, n: int, size: int, index: int) -> torch.Tensor:
        """Positions index * size .. (index + 1) * size - 1 of the endless sequence of epochs of range(n)."""
        positions = torch.arange(index * size, (index + 1) * size)
        epochs, offsets = positions // n, positions % n
        return torch.cat([self._perm(stream, int(e), n)[offsets[epochs == e]] for e in epochs.unique()])

    def batch(self, index: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The `index`-th batch (images in [-1, 1], labels, the data images' indices): data images first, then mix
        images."""
        ids = self._ids(0, len(self.data), self.batch_size - self.mix_size, index)
        images, labels = to_model_range(self.data.images[ids]), self.data.labels[ids]
        if self.mix_size:
            mix_ids = self._ids(1, len(self.mix), self.mix_size, index)
            images = torch.cat([images, to_model_range(self.mix.images[mix_ids])])
            labels = torch.cat([labels, self.mix.labels[mix_ids]])
        if self.hflip:
            flip = torch.rand(len(labels), generator=generator) < 0.5
            images[flip] = images[flip].flip(-1)
        return images, labels, ids


def load_mix_dataset(config: TrainConfig, data: ImageDataset) -> ImageDataset | None:
    """The dataset named by `mix_dataset`, checked against the training data (same classes, same image size)."""
    if not config.mix_dataset:
        return None
    mix = load_dataset(dataset=config.mix_dataset, split="train", data_flag="mix_dataset=DIR")
    if mix.class_names != data.class_names:
        raise ValueError(f"mix_dataset {config.mix_dataset!r} has classes {mix.class_names}, the training data "
                         f"{data.class_names}; the label ids must mean the same classes")
    if mix.images.shape[1:] != data.images.shape[1:]:
        raise ValueError(f"mix_dataset {config.mix_dataset!r} has {tuple(mix.images.shape[1:])} images, the training data "
                         f"{tuple(data.images.shape[1:])}")
    return mix


def _step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 97 + micro) * 1009 + rank)


def _warn_about_cpu_precision(accelerator: Accelerator, config: TrainConfig):
    if accelerator.device.type != "cpu" or config.mixed_precision == "no":
        return
    if config.mixed_precision == "fp16":
        logger.warning("mixed_precision=fp16 is ignored on CPU (Accelerate has no CPU fp16 autocast): training runs in fp32.")
    else:
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        if "avx512_bf16" not in flags and "amx_bf16" not in flags:
            logger.warning("mixed_precision=bf16 on a CPU without AVX-512 BF16/AMX is emulated and about 8x slower "
                           "than fp32 here; use mixed_precision=no on this machine.")


class Trainer:
    def __init__(self, config: TrainConfig, hub_model_id: str | None = None):
        self.config = config
        self.hub_model_id = hub_model_id  # named in the model card's usage example; else the output folder
        self.output_dir = Path(config.output_dir)
        self.checkpoint_dir = self.output_dir / "checkpoints"
        # Accelerate only turns a multi-process launch into gloo CPU training when told to use the CPU.
        multi_process_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        compiled = config.torch_compile != "no"
        self.accelerator = Accelerator(
            cpu=multi_process_cpu,
            mixed_precision=config.mixed_precision,
            dynamo_plugin=TorchDynamoPlugin(backend="inductor" if compiled else "no",
                                            mode=config.torch_compile if compiled else None),
            log_with=None if config.report_to == "none" else config.report_to,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")),
        )
        _warn_about_cpu_precision(self.accelerator, config)

    # ------------------------------------------------------------------ set-up
    def setup(self):
        config, acc = self.config, self.accelerator
        self.data = load_dataset(config.data_dir, config.dataset, "train")
        if config.max_train_images:
            self.data = ImageDataset(self.data.images[:config.max_train_images], self.data.labels[:config.max_train_images],
                                     self.data.class_names, self.data.source)
        self.mix = load_mix_dataset(config, self.data)
        torch.manual_seed(config.seed)  # weight initialisation
        pipe = self._initial_pipeline()
        self.noise_scheduler: DDPMScheduler = pipe.scheduler
        self.clip_loss = None  # the CLIP-guided loss term (config clip_loss_weight > 0), on a frozen CLIP
        if config.clip_loss_weight > 0:
            self.clip_loss = ClipGuidanceLoss.from_config(config, self.noise_scheduler, self.data.class_names, acc.device)
        self.clip_window = []  # the CLIP terms of the updates since the last log row
        # the trained module: the U-Net, or for a style model the U-Net and its condition encoder together
        unet = pipe.unet if self.style is None else StyleDenoiser(pipe.unet, pipe.condition_encoder)
        on_gpu = acc.device.type == "cuda"
        if config.channels_last:
            unet.to(memory_format=torch.channels_last)
        # foreach on a GPU: one fused update instead of ~4 kernel launches per tensor; on the CPU the per-tensor loop
        # is as fast and keeps earlier CPU runs' resumes bit-identical.
        self.ema = EMAModel(unet.parameters(), decay=config.ema_max_decay, use_ema_warmup=True, power=config.ema_power,
                            foreach=on_gpu) if config.use_ema else None
        # the side-by-side EMAs of ema_extra_powers (power 0: decay 0, the raw weights)
        self.extra_emas = {power: EMAModel(unet.parameters(), decay=config.ema_max_decay, use_ema_warmup=True, power=power,
                                           foreach=on_gpu) for power in config.ema_extra_powers}
        self.emas = [e for e in (self.ema, *self.extra_emas.values()) if e is not None]  # every EMA, updated together
        for ema in self.emas:
            ema.to(acc.device)  # the shadow weights live beside the trained ones (update and checkpoint there)
        if on_gpu:
            torch.backends.cudnn.benchmark = True  # fixed 28x28 shapes: autotuned convolutions
        optimizer = torch.optim.AdamW(self._param_groups(unet), lr=config.learning_rate,
                                      betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.weight_decay)
        self.images_per_step = config.train_batch_size * config.gradient_accumulation_steps * acc.num_processes
        self.steps_per_epoch = max(1, len(self.data) // self.images_per_step)
        self.max_steps = config.max_train_steps or config.num_epochs * self.steps_per_epoch
        # Stepped once per optimizer update by us (not prepared): Accelerate would step it num_processes times.
        self.lr_scheduler = get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=config.lr_warmup_steps,
                                          num_training_steps=self.max_steps)
        self._raw_optimizer = optimizer
        self.budget_fixed = config.max_train_minutes is None  # with a budget, the probe fixes the length
        self.model, self.optimizer = acc.prepare(unet, optimizer)
        acc.register_for_checkpointing(self.lr_scheduler)
        for ema in self.emas:
            acc.register_for_checkpointing(ema)
        self.sampler = BatchSampler(self.data, config.train_batch_size, config.seed, config.hflip, self.mix,
                                    mix_batch_size(config))
        self.null_id = len(self.data.class_names)
        self.elapsed = 0.0  # training wall time, carried across resumes

    def _param_groups(self, module) -> list[dict]:
        """The optimizer's parameter groups: one, or the style MLP apart at style_learning_rate."""
        rate = self.config.style_learning_rate
        if self.style is None or rate is None:
            return [{"params": list(module.parameters())}]
        style = list(module.encoder.style_mlp.parameters())
        apart = set(map(id, style))
        return [{"params": [p for p in module.parameters() if id(p) not in apart]}, {"params": style, "lr": rate}]

    def _initial_pipeline(self) -> FashionDDPMPipeline:
        """The pipeline training starts from: fresh weights, or (style model) a condition encoder with the training
        set's percentile tables, optionally on the weights of the class-only model `init_from`."""
        config = self.config
        self.style, encoder = None, None
        if config.style_attributes:
            embedding_dim = 4 * ({**DEFAULT_UNET_CONFIG, **config.unet}["block_out_channels"][0])
            base = None
            if config.init_from:
                from ..models import load_pipeline

                base = load_pipeline(config.init_from)
                embedding_dim = base.unet.config.time_embedding_dim or 4 * base.unet.config.block_out_channels[0]
            encoder, self.style = build_encoder(self.data, config.style_attributes, embedding_dim, config.style_hidden_dim)
            if base is not None:
                if base.scheduler.config.prediction_type != config.prediction_type:
                    raise ValueError(f"init_from {config.init_from} predicts {base.scheduler.config.prediction_type}, "
                                     f"the config {config.prediction_type}; set prediction_type to match")
                unet = from_class_only(base, encoder)
                return FashionDDPMPipeline(unet, DDPMScheduler.from_config(base.scheduler.config),
                                           class_names=self.data.class_names, condition_encoder=encoder)
        if config.init_from:  # a fine-tune of a class-only model: its U-Net and noise schedule
            return self._fine_tune_start()
        return FashionDDPMPipeline.from_config_dict(
            unet={**config.unet, "sample_size": self.data.images.shape[-1]},
            scheduler={"num_train_timesteps": config.num_train_timesteps, "beta_schedule": config.beta_schedule,
                       "prediction_type": config.prediction_type},
            class_names=self.data.class_names, condition_encoder=encoder,
        )

    def _fine_tune_start(self) -> FashionDDPMPipeline:
        from ..models import load_pipeline

        config = self.config
        base = load_pipeline(config.init_from)
        if base.condition_encoder is not None:
            raise ValueError(f"init_from {config.init_from} is a style model; a fine-tune starts from a class-only one")
        theirs = base.scheduler.config
        for key, ours in (("prediction_type", config.prediction_type), ("num_train_timesteps", config.num_train_timesteps),
                          ("beta_schedule", config.beta_schedule)):
            if theirs[key] != ours:
                raise ValueError(f"init_from {config.init_from} has {key} {theirs[key]!r}, the config {ours!r}; set "
                                 f"{key}={theirs[key]} to fine-tune it")
        if list(base.class_names) != list(self.data.class_names):
            raise ValueError(f"init_from {config.init_from} has classes {list(base.class_names)}, the training data "
                             f"{list(self.data.class_names)}")
        return FashionDDPMPipeline(base.unet, DDPMScheduler.from_config(theirs), class_names=self.data.class_names)

    def _data_source(self) -> str:
        if self.mix is None:
            return self.data.source
        return (f"{self.data.source}, mixed with {self.mix.source} ({self.sampler.mix_size} of every "
                f"{self.config.train_batch_size} images per batch)")

    # ------------------------------------------------------------------ one update
    def loss_on(self, step: int, micro: int) -> torch.Tensor:
        config, acc = self.config, self.accelerator
        g = _step_generator(config.seed, step, micro, acc.process_index)
        batch_index = (step * config.gradient_accumulation_steps + micro) * acc.num_processes + acc.process_index
        clean, labels, ids = self.sampler.batch(batch_index, g)
        noise = torch.randn(clean.shape, generator=g)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (len(clean),), generator=g)
        labels = torch.where(torch.rand(len(labels), generator=g) < config.label_dropout, self.null_id, labels)
        clean, noise, t, labels = (x.to(acc.device) for x in (clean, noise, t, labels))
        noisy = self.noise_scheduler.add_noise(clean, noise, t)
        target = noise if config.prediction_type == "epsilon" else self.noise_scheduler.get_velocity(clean, noise, t)
        with acc.autocast():
            if self.style is None:
                prediction = self.model(noisy, t, class_labels=labels).sample
            else:
                # each attribute given with probability 1 - style_dropout (so any subset can be asked for), none for
                # the null class or an image without a measurable item (NaN)
                style = self.style[ids]
                given = (torch.rand(style.shape, generator=g) >= config.style_dropout) & ~style.isnan()
                given &= (labels.cpu() != self.null_id).unsqueeze(1)
                style, given = style.nan_to_num(0.0).to(acc.device), given.float().to(acc.device)
                prediction = self.model(noisy, t, labels, style, given)
        if self.config.loss_weighting == "none":  # the plain loop's loss, computed exactly as before weighting existed
            loss = F.mse_loss(prediction.float(), target.float())
        else:
            per_image = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
            loss = (per_image * self.loss_weights(t)).mean()
        if self.clip_loss is not None:
            clip, term = self.clip_loss(noisy, prediction, t, labels)
            self.clip_window.append(term)
            loss = loss + clip
        return loss

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Each image's loss weight at its timestep: 1, or Min-SNR-gamma written for the prediction target (the
        noise-prediction error weighted by min(SNR, gamma), which for a v target is min(SNR, gamma) / (SNR + 1))."""
        if self.config.loss_weighting == "none":
            return torch.ones(len(t), device=t.device)
        snr = compute_snr(self.noise_scheduler, t).float()
        clipped = torch.clamp(snr, max=self.config.snr_gamma)
        return clipped / (snr + 1) if self.config.prediction_type == "v_prediction" else clipped / snr

    def update(self, step: int) -> torch.Tensor:
        """One optimizer update; returns its loss as a 0-d tensor on the device (no host sync per step)."""
        config, acc = self.config, self.accelerator
        total = torch.zeros((), device=acc.device)
        for micro in range(config.gradient_accumulation_steps):
            last = micro == config.gradient_accumulation_steps - 1
            with acc.no_sync(self.model) if not last else contextlib.nullcontext():
                loss = self.loss_on(step, micro) / config.gradient_accumulation_steps
                acc.backward(loss)
            total += loss.detach()
        acc.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_scheduler.step()
        for ema in self.emas:
            ema.step(self.model.parameters())
        return total

    # ------------------------------------------------------------------ the wall-clock budget
    def set_length(self, max_steps: int):
        """Makes the run `max_steps` updates long: the LR schedule is rebuilt for that length. Called only inside the
        warm-up (config checks budget_probe_steps <= lr_warmup_steps), where the learning rate does not depend on the
        length, so the run is the run a `max_train_steps=max_steps` launch makes."""
        config = self.config
        self.max_steps = max_steps
        current = [group["lr"] for group in self._raw_optimizer.param_groups]
        fresh = get_scheduler(config.lr_scheduler, self._raw_optimizer, num_warmup_steps=config.lr_warmup_steps,
                              num_training_steps=max_steps)  # (building it sets the LR of step 0: restored below)
        self.lr_scheduler.lr_lambdas = fresh.lr_lambdas
        for group, lr in zip(self._raw_optimizer.param_groups, current):
            group["lr"] = lr

    def fit_to_budget(self, done: int, probe_updates: int, probe_seconds: float, elapsed: float) -> int:
        """The length that fits max_train_minutes of training time, from the probe's seconds per update (the same on
        every process: the smallest), at least `done` and at most the configured length; applied with set_length."""
        acc = self.accelerator
        per_update = probe_seconds / probe_updates
        fits = done + int(0.97 * (60 * self.config.max_train_minutes - elapsed) / per_update)
        fits = int(acc.gather(torch.tensor([fits], device=acc.device)).min().item())
        length = max(done, min(self.max_steps, fits))
        logger.info("budget of %.1f min: %.3f s per update over %d updates -> %d updates (configured %d, %.2f epochs)",
                    self.config.max_train_minutes, per_update, probe_updates, length, self.max_steps,
                    length * self.images_per_step / len(self.data))
        self.set_length(length)
        self.budget_fixed = True
        return length

    # ------------------------------------------------------------------ outputs
    def ema_pipeline(self, ema: EMAModel | None = None) -> FashionDDPMPipeline:
        """The pipeline of the EMA weights (`ema`, default the run's EMA; the raw weights without EMA)."""
        model = copy.deepcopy(self.accelerator.unwrap_model(self.model))
        ema = ema or self.ema
        if ema is not None:
            ema.copy_to(model.parameters())
        model.to(self.accelerator.device).eval()
        unet, encoder = (model, None) if self.style is None else (model.unet, model.encoder)
        # Exported with the sampler, steps and guidance the config names: they become the model's defaults.
        s = self.config.sampling
        pipe = FashionDDPMPipeline(unet, make_scheduler(s.sampler, self.noise_scheduler.config),
                                   class_names=self.data.class_names, default_guidance_scale=s.guidance,
                                   default_num_inference_steps=s.steps,
                                   default_guidance_interval=None if s.interval == EVERY_STEP else list(s.interval),
                                   condition_encoder=encoder)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def sample_grid(self, pipe: FashionDDPMPipeline, path: Path, step: int) -> Path:
        """The EMA model's samples with the settings it is exported with (seed 0: the images `generate` makes)."""
        settings = self.config.sampling
        grid = sample_grid(pipe, self.config.sample_images_per_class, seed=0, settings=settings,
                           title=f"step {step}, EMA weights, {settings.describe()}")
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        return path

    def _log(self, row: dict):
        self.accelerator.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])
        with open(self.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


    @staticmethod
    def save_folder(pipe: FashionDDPMPipeline, folder: Path):
        """save_pretrained into `folder` whole or not at all (written beside it, then renamed over it)."""
        tmp = folder.with_name(f".tmp-{folder.name}")
        shutil.rmtree(tmp, ignore_errors=True)
        pipe.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)

    def export(self, final_loss: float | None, step: int) -> Path:
        """save_pretrained of the EMA pipeline into output_dir (via a temporary folder), grids and model card."""
        pipe = self.ema_pipeline()
        tmp = self.output_dir / ".tmp-export"
        shutil.rmtree(tmp, ignore_errors=True)
        pipe.save_pretrained(tmp)
        grid = self.sample_grid(pipe, self.output_dir / "samples" / "final.png", step)
        curve = plot_loss_curve(self.output_dir / "metrics.jsonl", self.output_dir / "samples" / "loss_curve.png")
        move_into(tmp, self.output_dir)
        for power, ema in self.extra_emas.items():
            self.save_folder(self.ema_pipeline(ema), self.output_dir / f"{EXTRA_EMA_PREFIX}{power:g}")
        write_model_card(self.output_dir, config=asdict(self.config), stats={
            "steps": step, "images_seen": step * self.images_per_step, "wall_time_s": round(self.elapsed, 1),
            "final_loss": final_loss, "hardware": _hardware(self.accelerator), "data_source": self._data_source(),
            "num_train_images": len(self.data), "epochs": round(step * self.images_per_step / len(self.data), 2),
            "images_per_step": self.images_per_step, "parameters": sum(p.numel() for p in pipe.unet.parameters()),
        }, sample_grid=grid.relative_to(self.output_dir).as_posix(), loss_curve=curve.relative_to(self.output_dir).as_posix(),
            settings=self.config.sampling, hub_model_id=self.hub_model_id, local_path=self.output_dir.as_posix())
        return self.output_dir

    # ------------------------------------------------------------------ the loop
    def run(self, resume_from_checkpoint: str | None = None) -> Path:
        config, acc = self.config, self.accelerator
        start = 0
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_partial(self.checkpoint_dir)
        if resume_from_checkpoint:
            state = checkpoints.resume(acc, self.checkpoint_dir, resume_from_checkpoint)
            if state is not None:
                start, self.elapsed = state["step"], state.get("wall_time_s", 0.0)
                if state.get("budget_fixed"):  # a budgeted run keeps the length its probe chose
                    self.set_length(state["max_steps"])
                    self.budget_fixed = True
                if self.ema is not None:
                    self.ema.to(acc.device)  # a loaded EMA state may sit on another device than the training
                logger.info("resumed from step %d", start)
        if acc.is_main_process:
            trim_rows(self.output_dir / "metrics.jsonl", start)
            (self.output_dir / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
        if config.report_to != "none":
            acc.init_trackers("fashion-ddpm", config={k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str, bool))})
        logger.info("training on %s: %d images (%s), %d processes, %d updates of %d images (%.2f epochs)",
                    acc.device, len(self.data), self.data.source, acc.num_processes, self.max_steps, self.images_per_step,
                    self.max_steps * self.images_per_step / len(self.data))
        if self.mix is not None:
            logger.info("mixing in %s: %d images, %d of the %d images of every batch", self.mix.source, len(self.mix),
                        self.sampler.mix_size, config.train_batch_size)
        self.model.train()
        bar = tqdm(initial=start, total=self.max_steps, disable=not acc.is_local_main_process, desc="train", dynamic_ncols=True)
        loss, window_loss, window_steps, window_start = None, 0.0, 0, time.perf_counter()
        logged_loss = None  # the card's final loss: the mean of the last logging window
        probe_steps = min(config.budget_probe_steps, self.max_steps)
        # The probe times the updates after the first few, which carry torch.compile's compilation, CUDA-graph
        # recording and cuDNN autotuning (a minute compiled, against milliseconds per update): the budget left after
        # them is spread at the steady speed.
        probe_warmup = min(PROBE_WARMUP_UPDATES, probe_steps - 1)
        probe_start, done = self.elapsed, start
        while done < self.max_steps:
            loss = self.update(done)
            done += 1
            bar.update()
            window_loss, window_steps = window_loss + loss, window_steps + 1
            if not self.budget_fixed and done - start == probe_warmup > 0:
                loss.item()
                probe_start = self.elapsed + time.perf_counter() - window_start
            if not self.budget_fixed and done - start >= probe_steps:
                loss.item()  # wait for the device: the probe's time is the updates' time
                now = self.elapsed + time.perf_counter() - window_start
                bar.total = self.fit_to_budget(done, done - start - probe_warmup, now - probe_start, now)
                bar.refresh()
            if done % config.log_every_steps == 0 or done == self.max_steps:
                now = time.perf_counter()
                self.elapsed += now - window_start
                speed = window_steps * self.images_per_step / (now - window_start)
                mean_loss = acc.reduce(window_loss / window_steps, "mean").item()
                row = {"step": done, "loss": mean_loss, "lr": self.lr_scheduler.get_last_lr()[0],
                       "images_per_s": speed, "epoch": done * self.images_per_step / len(self.data), "wall_time_s": self.elapsed}
                if self.clip_window:  # the mean CLIP term (1 - cos + cos negative, before lambda) of the window
                    row["clip_term"] = acc.reduce(torch.stack(self.clip_window).mean(), "mean").item()
                    self.clip_window = []
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", img_s=f"{speed:.0f}")
                logged_loss = mean_loss
                if acc.is_main_process:
                    self._log(row)
                window_loss, window_steps, window_start = 0.0, 0, now
            if done % config.checkpointing_steps == 0 or done == self.max_steps:
                checkpoints.save_checkpoint(acc, self.checkpoint_dir, done, config.checkpoints_total_limit,
                                            {"wall_time_s": self.elapsed, "loss": loss.item(), "max_steps": self.max_steps,
                                             "budget_fixed": config.max_train_minutes is not None and self.budget_fixed})
                window_start = time.perf_counter()  # checkpoint time is not training throughput
            if config.sample_every_steps and done % config.sample_every_steps == 0 and done != self.max_steps and acc.is_main_process:
                self.sample_grid(self.ema_pipeline(), self.output_dir / "samples" / f"step-{done:07d}.png", done)
                window_start = time.perf_counter()
        bar.close()
        logger.info("process %d of %d finished %d updates", acc.process_index, acc.num_processes, self.max_steps - start)
        acc.wait_for_everyone()
        if acc.is_main_process:
            self.export(logged_loss, self.max_steps)
            logger.info("exported the EMA pipeline to %s", self.output_dir)
        acc.end_training()
        return self.output_dir


def _hardware(accelerator: Accelerator) -> str:
    if accelerator.device.type == "cuda":
        return f"{accelerator.num_processes} x {torch.cuda.get_device_name(accelerator.device)}"
    return f"{accelerator.num_processes} process(es) on CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def train(config: TrainConfig, resume_from_checkpoint: str | None = None, push: bool = False,
          hub_model_id: str | None = None, hub_token: str | None = None, hub_base_model: str | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if push:  # an upload that cannot succeed fails now, not after the training
        check_hub_access(hub_model_id, hub_token)
        check_base_model(config.init_from, hub_model_id, hub_base_model, hub_token, "--hub_base_model")
    trainer = Trainer(config, hub_model_id if push else None)
    trainer.setup()
    folder = trainer.run(resume_from_checkpoint)
    if push and trainer.accelerator.is_main_process:
        logger.info("pushed to %s", push_model(folder, hub_model_id, hub_token, base_model=hub_base_model))
    return folder
