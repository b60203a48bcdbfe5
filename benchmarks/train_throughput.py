"""Training throughput and peak memory: the project's Trainer.update vs a minimal diffusers-example training loop.

Two variants, same U-Net config and initial weights, same batch size, same threads, same in-memory data:

  project      what `train_conditional.py` runs: pipeline.training.config.validate(config) -> pipeline.training.trainer.Trainer
               (Accelerate, deterministic per-step generators, label dropout, grad clipping, AdamW, LR schedule, EMA),
               timed over Trainer.update(step) calls (report_to none, output_dir in a temporary folder).
  reference    a minimal plain-PyTorch loop written like diffusers' examples/unconditional_image_generation/
               train_unconditional.py: random batch, noise, random timesteps, add_noise, unet(noisy, t, labels).sample,
               F.mse_loss, backward, clip_grad_norm_, AdamW step, LR scheduler step, zero_grad, EMA step (plus the
               label dropout a class-conditional CFG model needs). Batches are indexed from the same in-memory uint8
               tensor (no DataLoader / PIL transforms), so the comparison measures loop overhead, not data loading.

Each run is its own subprocess (so ru_maxrss peaks are per variant); the variants alternate over rounds (P R, R P, ...)
so background load falls on both; warm-up updates are excluded; img/s is the median over rounds.

Usage:
  python -m benchmarks.train_throughput                               # configs/cpu.yaml, its batch (128)
  python -m benchmarks.train_throughput --steps 30 --rounds 3 --out benchmarks/results
  python -m benchmarks.train_throughput --smoke                       # tiny U-Net, 2 updates, seconds (CI)
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import REPO, device_label, emit, machine_info, markdown_table, median, parser, report_to_parent, rss_mb, run_worker

NAME = "train_throughput"
VARIANTS = ("project", "reference")


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], threads=True, out=True, smoke="tiny random U-Net, 2 updates")
    p.add_argument("--config", default=str(REPO / "configs/cpu.yaml"), help="training config (U-Net, optimiser, EMA, batch)")
    p.add_argument("--batch", type=int, default=None, help="images per update (default: the config's train_batch_size; smoke 8)")
    p.add_argument("--steps", type=int, default=None, help="timed updates per run (default 15; smoke 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed updates before timing (default 3; smoke 1)")
    p.add_argument("--rounds", type=int, default=None, help="runs per variant, alternating (default 3; smoke 1)")
    p.add_argument("--data", choices=("auto", "synthetic"), default=None,
                   help="auto: the config's Fashion-MNIST, synthetic if not installed; synthetic: random uint8 images "
                        "(same compute). Default auto; smoke synthetic")
    harness.add_worker_args(p, VARIANTS)
    args = p.parse_args(argv)
    if args.worker:
        return args
    defaults = (2, 1, 1, "synthetic") if args.smoke else (15, 3, 3, "auto")
    args.steps = args.steps or defaults[0]
    args.warmup = defaults[1] if args.warmup is None else args.warmup
    args.rounds = args.rounds or defaults[2]
    args.data = args.data or defaults[3]
    if min(args.steps, args.rounds) < 1 or args.warmup < 0:
        p.error("--steps and --rounds must be >= 1, --warmup >= 0")
    return args


# ---------------------------------------------------------------------------------------------------- worker side
def _reset_peak_rss() -> bool:
    """Resets VmHWM (Linux >= 4.0: `echo 5 > /proc/self/clear_refs`) so the training loop's own peak can be read."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _reference(config: dict, data, threads):
    """A minimal loop in the style of diffusers' train_unconditional.py, on the same model and hyper-parameters."""
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DModel
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    from pipeline import FashionDDPMPipeline
    from pipeline.data import to_model_range
    from pipeline.training.config import validate

    config = validate(config)
    if threads:
        torch.set_num_threads(threads)
    device = _device()
    torch.manual_seed(config.seed)  # the same initial weights as the Trainer
    pipe = FashionDDPMPipeline.from_config_dict(
        unet={**config.unet, "sample_size": data.images.shape[-1]},
        scheduler={"num_train_timesteps": config.num_train_timesteps, "beta_schedule": config.beta_schedule,
                   "prediction_type": config.prediction_type},
        class_names=data.class_names)
    model, noise_scheduler = pipe.unet.to(device), pipe.scheduler
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.weight_decay)
    lr_scheduler = get_scheduler(config.lr_scheduler, optimizer=optimizer, num_warmup_steps=config.lr_warmup_steps,
                                 num_training_steps=config.max_train_steps)
    ema_model = EMAModel(model.parameters(), decay=config.ema_max_decay, use_ema_warmup=True, power=config.ema_power,
                         model_cls=UNet2DModel, model_config=model.config) if config.use_ema else None
    if ema_model is not None:
        ema_model.to(device)
    # bf16 autocast on a GPU when the config asks for it (as Accelerate does); on the CPU the config's fp32
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda" and config.mixed_precision == "bf16")
    model.train()
    images_uint8, all_labels, null_id = data.images, data.labels, len(data.class_names)
    bsz = config.train_batch_size

    def update(step):
        idx = torch.randint(0, len(images_uint8), (bsz,))
        clean_images, class_labels = to_model_range(images_uint8[idx]), all_labels[idx]
        class_labels = torch.where(torch.rand(bsz) < config.label_dropout, null_id, class_labels)
        noise = torch.randn(clean_images.shape)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (bsz,)).long()
        clean_images, class_labels, noise, timesteps = (x.to(device) for x in (clean_images, class_labels, noise, timesteps))
        noisy_images = noise_scheduler.add_noise(clean_images, noise, timesteps)
        target = noise if config.prediction_type == "epsilon" else noise_scheduler.get_velocity(clean_images, noise, timesteps)
        with autocast:
            model_output = model(noisy_images, timesteps, class_labels=class_labels).sample
        loss = F.mse_loss(model_output.float(), target.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad()
        if ema_model is not None:
            ema_model.step(model.parameters())
        return loss.detach().item()

    return update, sum(p.numel() for p in model.parameters())


def _device() -> str:
    """Where both variants train: a GPU when there is one (Accelerate's choice for the project's Trainer), else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def worker(variant: str, spec: dict):
    import torch

    from pipeline.training.config import validate

    threads = spec.get("threads")
    if threads:
        torch.set_num_threads(threads)
    data = harness.training_data(spec["config"], spec["data"])
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        spec["config"]["output_dir"] = tmp
        update, params = (harness.trainer_update if variant == "project" else _reference)(spec["config"], data, threads)
        warmup, steps = spec["warmup"], spec["steps"]
        losses = [update(step) for step in range(warmup)]
        gc.collect()
        rss_before = rss_mb("VmRSS")
        reset = _reset_peak_rss()
        start = time.perf_counter()
        losses += [update(step) for step in range(warmup, warmup + steps)]
        losses = [float(loss) for loss in losses]  # the project's update returns a device tensor: waits for the device
        elapsed = time.perf_counter() - start
        result = {
            "variant": variant,
            "images_per_s": steps * spec["batch"] / elapsed,
            "seconds": elapsed,
            "s_per_update": elapsed / steps,
            "timed_updates": steps,
            "warmup_updates": warmup,
            "final_loss": losses[-1],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # whole process, incl. set-up
            "rss_before_timing_mb": rss_before,
            "timed_loop_peak_rss_mb": rss_mb("VmHWM") if reset else None,  # peak during the timed updates only
            "torch_threads": torch.get_num_threads(),
            "device": device_label(_device()),
            "torch_version": torch.__version__,
            "unet_parameters": int(params),
            "data_source": data.source,
            "num_train_images": len(data),
            "seed": validate(spec["config"]).seed,  # of the initial weights and the random draws
        }
    report_to_parent(result)


# ---------------------------------------------------------------------------------------------------- parent side
def build_spec(args) -> dict:
    """What each worker trains: the config (`harness.training_values`), the timed and warm-up updates, the data."""
    values = harness.training_values(args.config, args.smoke, args.batch)
    values["max_train_steps"] = args.warmup + args.steps  # the LR schedule length both variants use
    return {"config": values, "batch": values["train_batch_size"], "steps": args.steps, "warmup": args.warmup,
            "threads": args.threads, "data": args.data}


def main(argv=None):
    args = parse_args(argv)
    if harness.ran_as_worker(args, worker):
        return
    spec, machine = build_spec(args), machine_info(args.threads)
    runs = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for variant in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
            runs[variant].append(run_worker(NAME, harness.worker_argv(variant, spec), variant, spec["threads"]))
            print(f"round {r + 1}/{args.rounds}: {variant} {runs[variant][-1]['images_per_s']:.1f} img/s, "
                  f"peak RSS {runs[variant][-1]['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    first = runs["project"][0]
    machine["torch_threads"] = first["torch_threads"]
    machine["torch_version"] = first["torch_version"]
    machine["device"] = first["device"]

    results = {}
    for variant, rs in runs.items():
        timed_peaks = [r["timed_loop_peak_rss_mb"] for r in rs if r["timed_loop_peak_rss_mb"] is not None]
        results[variant] = {
            "images_per_s": median([r["images_per_s"] for r in rs]),
            "s_per_update": median([r["s_per_update"] for r in rs]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "timed_loop_peak_rss_mb": max(timed_peaks) if timed_peaks else None,
            "rss_before_timing_mb": median([r["rss_before_timing_mb"] for r in rs if r["rss_before_timing_mb"]] or [0]),
            "per_round_images_per_s": [r["images_per_s"] for r in rs],
            "final_losses": [r["final_loss"] for r in rs],
        }
    result = {
        "benchmark": NAME,
        "smoke": args.smoke,
        "machine": machine,
        "settings": {"config": os.path.relpath(args.config, REPO) if Path(args.config).is_absolute() else args.config,
                     "batch": spec["batch"], "timed_updates": args.steps, "warmup_updates": args.warmup,
                     "rounds": args.rounds, "threads": first["torch_threads"], "unet": spec["config"].get("unet", {}),
                     "unet_parameters": first["unet_parameters"], "data_source": first["data_source"],
                     "num_train_images": first["num_train_images"], "use_ema": spec["config"].get("use_ema", True),
                     "seed": first["seed"]},
        "results": results,
        "ratios": {"project_over_reference_images_per_s":
                   results["project"]["images_per_s"] / results["reference"]["images_per_s"],
                   "project_over_reference_peak_rss": results["project"]["peak_rss_mb"] / results["reference"]["peak_rss_mb"]},
    }
    emit(NAME, result, to_markdown(result), args)
    return result


def to_markdown(r: dict) -> str:
    s, res, ratios = r["settings"], r["results"], r["ratios"]
    labels = {"project": "project `Trainer.update` (train_conditional.py)",
              "reference": "reference loop (diffusers train_unconditional.py style)"}

    def mb(v):
        return f"{v:.0f}" if v is not None else "n/a"

    rows = [[labels[n], v["images_per_s"], 1000 * v["s_per_update"], mb(v["peak_rss_mb"]), mb(v["timed_loop_peak_rss_mb"]),
             ", ".join(f"{x:.1f}" for x in v["per_round_images_per_s"])] for n, v in res.items()]
    table = markdown_table(["variant", "img/s (median)", "ms/update", "peak RSS MB (process)", "peak RSS MB (timed loop)",
                            "img/s per round"], rows)
    return "\n".join([
        f"# Training throughput{' (smoke run: tiny random U-Net, not a real measurement)' if r['smoke'] else ''}",
        "",
        f"Config `{s['config']}` (U-Net {s['unet']}, {s['unet_parameters']:,} parameters), batch {s['batch']}, "
        f"{s['threads']} torch threads, {s['timed_updates']} timed updates after {s['warmup_updates']} warm-up, "
        f"{s['rounds']} alternating round(s), each run in its own process; data: {s['data_source']} "
        f"({s['num_train_images']:,} images, in memory).",
        "",
        table,
        "",
        f"- project / reference img/s: **{ratios['project_over_reference_images_per_s']:.3f}**",
        f"- project / reference peak RSS: {ratios['project_over_reference_peak_rss']:.3f}",
    ])


if __name__ == "__main__":
    main()
