"""The class-conditional (and style) model's training job behind `train_conditional.py` and `fashion-ddpm train`:
noise- or velocity-prediction MSE (Min-SNR weighted by default) with label and style dropout, on the shared loop
(`loop.py`: Accelerate, AdamW, EMA, resumable checkpoints, logging).

Every random draw (batch order, noise, timesteps, label dropout, flips) comes from a generator seeded by
(seed, step, micro-batch, rank), never from global RNG state, so a run resumed from a checkpoint continues exactly as
an uninterrupted run would: the final weights are bit-identical (on the CPU; GPU kernels are not bit-reproducible).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel, compute_snr

from ..data import ImageDataset, load_dataset, to_model_range
from ..hub import check_base_model, check_hub_access, push_model
from ..io import staged_folder
from ..pipeline_fashion_ddpm import DEFAULT_UNET_CONFIG, FashionDDPMPipeline
from ..plots import plot_loss_curve
from ..schedulers import make_scheduler
from ..settings import EVERY_STEP
from ..visualize import sample_grid
from .clip_loss import ClipGuidanceLoss
from .config import TrainConfig, mix_batch_size
from .loop import TrainingLoop, hardware, make_accelerator, step_generator
from .model_card import write_model_card
from .style import StyleDenoiser, build_encoder, from_class_only, from_style_model

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


class Trainer(TrainingLoop):
    """The class-conditional (and style) model's training job on the shared loop: noise/velocity MSE, optionally
    Min-SNR weighted, with label and style dropout; a wall-clock budget; sample grids; the EMA pipeline exported."""

    def __init__(self, config: TrainConfig, hub_model_id: str | None = None):
        output_dir = Path(config.output_dir)
        super().__init__(config, make_accelerator(output_dir, config.mixed_precision, config.torch_compile,
                                                  config.report_to))
        self.hub_model_id = hub_model_id  # named in the model card's usage example; else the output folder
        self.accumulation_steps = config.gradient_accumulation_steps
        self.report_to = config.report_to

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
        # the trained module: the U-Net, or for a style model the U-Net and its condition encoder together
        unet = pipe.unet if self.style is None else StyleDenoiser(pipe.unet, pipe.condition_encoder)
        if config.channels_last:
            unet.to(memory_format=torch.channels_last)
        if acc.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed 28x28 shapes: autotuned convolutions
        self.images_per_step = self.items_per_update
        self.steps_per_epoch = max(1, len(self.data) // self.images_per_step)
        # the run's EMA, then the side-by-side EMAs of ema_extra_powers (power 0: decay 0, the raw weights)
        powers = ([config.ema_power] if config.use_ema else []) + list(config.ema_extra_powers)
        self.prepare(unet, self._param_groups(unet), powers, config.max_train_steps or config.num_epochs * self.steps_per_epoch)
        self.ema = self.emas[0] if config.use_ema else None
        self.extra_emas = dict(zip(config.ema_extra_powers, self.emas[1 if config.use_ema else 0:]))
        self.budget_fixed = config.max_train_minutes is None  # with a budget, the probe fixes the length
        self.sampler = BatchSampler(self.data, config.train_batch_size, config.seed, config.hflip, self.mix,
                                    mix_batch_size(config))
        self.null_id = len(self.data.class_names)

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
        set's percentile tables, optionally on the weights of `init_from` (a class-only model, or a style model of the
        same attributes and data)."""
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
                # a class-only model gains the style path at zero; a style model is trained on as it is
                style_base = getattr(base, "condition_encoder", None) is not None
                unet = from_style_model(base, encoder) if style_base else from_class_only(base, encoder)
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
    def loss_on(self, step: int, micro: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of micro-batch `micro` of update `step`, and (with the CLIP term) its term to log."""
        config, acc = self.config, self.accelerator
        g = step_generator(config.seed, step, micro, acc.process_index)
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
                if config.style_free_prob > 0:  # drawn only then: runs without it keep their random stream
                    given &= (torch.rand(len(style), generator=g) >= config.style_free_prob).unsqueeze(1)
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
            return loss + clip, {"clip_term": term.detach(), "clip_terms": torch.ones((), device=acc.device)}
        return loss, {}

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Each image's loss weight at its timestep: 1, or Min-SNR-gamma written for the prediction target (the
        noise-prediction error weighted by min(SNR, gamma), which for a v target is min(SNR, gamma) / (SNR + 1))."""
        if self.config.loss_weighting == "none":
            return torch.ones(len(t), device=t.device)
        snr = compute_snr(self.noise_scheduler, t).float()
        clipped = torch.clamp(snr, max=self.config.snr_gamma)
        return clipped / (snr + 1) if self.config.prediction_type == "v_prediction" else clipped / snr

    # ------------------------------------------------------------------ the loop's hooks
    def announce(self):
        logger.info("training on %s: %d images (%s), %d processes, %d updates of %d images (%.2f epochs)",
                    self.accelerator.device, len(self.data), self.data.source, self.accelerator.num_processes,
                    self.max_steps, self.images_per_step, self.max_steps * self.images_per_step / len(self.data))
        if self.mix is not None:
            logger.info("mixing in %s: %d images, %d of the %d images of every batch", self.mix.source, len(self.mix),
                        self.sampler.mix_size, self.config.train_batch_size)

    def progress_fields(self, done: int) -> dict:
        return {"epoch": done * self.images_per_step / len(self.data)}

    def window_fields(self, sums: dict[str, torch.Tensor]) -> dict:
        if "clip_term" not in sums:
            return {}
        return {"clip_term": (sums["clip_term"] / sums["clip_terms"]).item()}  # (1 - cos + cos negative, before lambda)

    def checkpoint_state(self) -> dict:
        return {"max_steps": self.max_steps,
                "budget_fixed": self.config.max_train_minutes is not None and self.budget_fixed}

    def on_resume(self, state: dict):
        if state.get("budget_fixed"):  # a budgeted run keeps the length its probe chose
            self.set_length(state["max_steps"])
            self.budget_fixed = True

    def between_updates(self, done: int):
        every = self.config.sample_every_steps
        if every and done % every == 0 and done != self.max_steps and self.accelerator.is_main_process:
            self.sample_grid(self.ema_pipeline(), self.output_dir / "samples" / f"step-{done:07d}.png", done)
            self.window_start = time.perf_counter()

    # ------------------------------------------------------------------ the wall-clock budget
    def begin(self, resume_from_checkpoint: str | None) -> int:
        start = super().begin(resume_from_checkpoint)
        # The probe times the updates after the first few, which carry torch.compile's compilation, CUDA-graph
        # recording and cuDNN autotuning (a minute compiled, against milliseconds per update): the budget left after
        # them is spread at the steady speed.
        self.probe_steps = min(self.config.budget_probe_steps, self.max_steps)
        self.probe_warmup = min(PROBE_WARMUP_UPDATES, self.probe_steps - 1)
        self.probe_start = self.elapsed
        return start

    def after_update(self, done: int, start: int, loss: torch.Tensor) -> int | None:
        """With max_train_minutes: times the probe's updates, then fixes the run's length to fit the budget."""
        if self.budget_fixed:
            return None
        if done - start == self.probe_warmup > 0:
            loss.item()  # wait for the device: the probe's time is the updates' time
            self.probe_start = self.elapsed_now()
        if done - start < self.probe_steps:
            return None
        loss.item()
        now = self.elapsed_now()
        return self.fit_to_budget(done, done - start - self.probe_warmup, now - self.probe_start, now)

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
        model = self.averaged(ema or self.ema)
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

    def export(self, final_loss: float | None, step: int) -> Path:
        """save_pretrained of the EMA pipeline into output_dir (via a temporary folder), grids and model card."""
        pipe = self.ema_pipeline()
        with staged_folder(self.output_dir) as tmp:
            pipe.save_pretrained(tmp)
            grid = self.sample_grid(pipe, self.output_dir / "samples" / "final.png", step)
            curve = plot_loss_curve(self.output_dir / "metrics.jsonl", self.output_dir / "samples" / "loss_curve.png")
        for power, ema in self.extra_emas.items():
            with staged_folder(self.output_dir / f"{EXTRA_EMA_PREFIX}{power:g}", whole=True) as tmp:
                self.ema_pipeline(ema).save_pretrained(tmp)
        write_model_card(self.output_dir, config=asdict(self.config), stats={
            "steps": step, "images_seen": step * self.images_per_step, "wall_time_s": round(self.elapsed, 1),
            "final_loss": final_loss, "hardware": hardware(self.accelerator), "data_source": self._data_source(),
            "num_train_images": len(self.data), "epochs": round(step * self.images_per_step / len(self.data), 2),
            "images_per_step": self.images_per_step, "parameters": sum(p.numel() for p in pipe.unet.parameters()),
        }, sample_grid=grid.relative_to(self.output_dir).as_posix(), loss_curve=curve.relative_to(self.output_dir).as_posix(),
            settings=self.config.sampling, hub_model_id=self.hub_model_id, local_path=self.output_dir.as_posix())
        return self.output_dir


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
