"""Sampling speed of FashionDDPMPipeline vs the usual two-pass classifier-free-guidance loop vs the bare U-Net.

Three variants, same weights, same batch, same number of denoising steps, one process:

  pipeline      FashionDDPMPipeline.__call__ (output_type="pt", progress bar off): ONE batched U-Net pass of 2B images
                per step (null + conditional halves), then DDPMScheduler.step.
  reference     the loop as diffusers' examples / course notebooks write classifier-free guidance: TWO U-Net passes of
                B images per step (conditional, then null class), combine, DDPMScheduler.step.
  unet_floor    only the U-Net: `steps` forward calls on a batch of 2B, no scheduler, no pipeline code. The floor any
                batched-CFG sampler of this model pays.

The variants run interleaved (order rotated every round) and each reports the median over rounds, so background load
hits all three alike. The pipeline and the reference get identical starting noise and identical per-image generators
(so identical DDPM step noise); the script reports the largest absolute pixel difference between their images.

Usage:
  python -m benchmarks.sampling_speed                      # configs/cpu.yaml U-Net, batch 20, 100 DDPM steps
  python -m benchmarks.sampling_speed --model pretrained/fashion-ddpm-cpu --out benchmarks/results
  python -m benchmarks.sampling_speed --smoke              # tiny random U-Net, seconds (CI)
"""

from __future__ import annotations

import sys
import time

from benchmarks.harness import REPO, TINY_UNET, emit, markdown_table, median, parser, repo_relative, smoke_pipeline, torch_machine

NAME = "sampling_speed"


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], model=True, model_default="fresh weights with --config's U-Net; the compute is the same",
               threads=True, seed=0, out=True, smoke="tiny random U-Net, few steps")
    p.add_argument("--config", default=str(REPO / "configs/cpu.yaml"), help="training config whose unet/scheduler settings to use")
    p.add_argument("--batch", type=int, default=None, help="images per call (default 20; smoke 2)")
    p.add_argument("--steps", type=int, default=None, help="DDPM denoising steps (default 100; smoke 3)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved timed rounds, median reported (default 5; smoke 2)")
    p.add_argument("--guidance", type=float, default=3.0, help="guidance scale (not 0 or 1, so guidance is on)")
    args = p.parse_args(argv)
    defaults = (2, 3, 2) if args.smoke else (20, 100, 5)
    args.batch = args.batch or defaults[0]
    args.steps = args.steps or defaults[1]
    args.rounds = args.rounds or defaults[2]
    if args.guidance in (0, 1):
        p.error("--guidance 0 or 1 needs only one U-Net pass per step; pick a real guidance weight such as 3")
    if min(args.batch, args.steps, args.rounds) < 1:
        p.error("--batch, --steps and --rounds must be >= 1")
    return args


def build_pipeline(args):
    import torch
    from diffusers import DDPMScheduler

    from pipeline import FashionDDPMPipeline

    if args.model:
        pipe = FashionDDPMPipeline.from_pretrained(args.model)
        source = args.model
        if not isinstance(pipe.scheduler, DDPMScheduler):
            pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    elif args.smoke:
        pipe, source = smoke_pipeline(args.seed), f"random init, smoke U-Net {TINY_UNET}"
    else:
        from pipeline.training.config import load_config

        config = load_config(args.config)
        torch.manual_seed(args.seed)
        pipe = FashionDDPMPipeline.from_config_dict(
            unet=config.unet,
            scheduler={"num_train_timesteps": config.num_train_timesteps, "beta_schedule": config.beta_schedule,
                       "prediction_type": config.prediction_type})
        source = f"random init, U-Net of {repo_relative(args.config)}"
    pipe.unet.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe, source


def variants(pipe, args) -> dict:
    """The three timed variants, each run(n_steps) -> (seconds, images or None), on the same weights and batch."""
    import torch
    from diffusers import DDPMScheduler
    from diffusers.utils.torch_utils import randn_tensor

    unet, B, w = pipe.unet, args.batch, args.guidance
    class_ids = [i % len(pipe.class_names) for i in range(B)]
    labels = torch.tensor(class_ids)
    null = torch.full_like(labels, pipe.null_class_id)
    shape = (B, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    ref_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    floor_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    def generators():  # one per image, as the pipeline documents for per-image reproducibility
        return [torch.Generator().manual_seed(args.seed * 100_003 + i) for i in range(B)]

    def run_pipeline(n_steps):
        gens = generators()
        start = time.perf_counter()
        images = pipe(class_labels=class_ids, guidance_scale=w, num_inference_steps=n_steps, generator=gens,
                      output_type="pt").images
        return time.perf_counter() - start, images

    @torch.no_grad()
    def run_reference(n_steps):
        # Classifier-free guidance as in diffusers' examples / the diffusion course: two U-Net calls per step.
        gens = generators()
        start = time.perf_counter()
        latents = randn_tensor(shape, generator=gens, dtype=unet.dtype)  # the same noise the pipeline draws
        ref_scheduler.set_timesteps(n_steps)
        for t in ref_scheduler.timesteps:
            noise_cond = unet(latents, t, class_labels=labels).sample
            noise_uncond = unet(latents, t, class_labels=null).sample
            noise_pred = noise_uncond + w * (noise_cond - noise_uncond)
            latents = ref_scheduler.step(noise_pred, t, latents, generator=gens).prev_sample
        images = (latents / 2 + 0.5).clamp(0, 1)
        return time.perf_counter() - start, images

    x2 = torch.randn((2 * B, *shape[1:]), generator=torch.Generator().manual_seed(args.seed))
    labels2 = torch.cat([null, labels])

    @torch.no_grad()
    def run_floor(n_steps):
        floor_scheduler.set_timesteps(n_steps)
        timesteps = floor_scheduler.timesteps
        start = time.perf_counter()
        for t in timesteps:
            _ = unet(x2, t, class_labels=labels2).sample
        return time.perf_counter() - start, None

    return {"pipeline": run_pipeline, "reference_two_pass": run_reference, "unet_floor": run_floor}


def timed_rounds(runs: dict, args) -> tuple[dict, list[float]]:
    """({variant: its seconds per round}, the largest pixel difference pipeline vs reference per round), after a
    warm-up of each; the order rotates every round so background load hits all three alike."""
    for run in runs.values():  # warm-up: allocator, oneDNN primitives for these shapes
        run(min(2, args.steps))
    times, diffs, names = {name: [] for name in runs}, [], list(runs)
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        images = {}
        for name in order:
            elapsed, images[name] = runs[name](args.steps)
            times[name].append(elapsed)
        diffs.append((images["pipeline"] - images["reference_two_pass"]).abs().max().item())
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {times[n][-1]:.3f}s" for n in names),
              flush=True, file=sys.stderr)
    return times, diffs


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    pipe, source = build_pipeline(args)
    unet, B, steps = pipe.unet, args.batch, args.steps
    max_steps = pipe.scheduler.config.num_train_timesteps
    if steps > max_steps:
        raise SystemExit(f"--steps {steps} exceeds the scheduler's {max_steps} training steps")
    times, diffs = timed_rounds(variants(pipe, args), args)
    unet_calls = {"pipeline": (steps, 2 * B), "reference_two_pass": (2 * steps, B), "unet_floor": (steps, 2 * B)}
    results = {}
    for name, (calls, per_call) in unet_calls.items():
        med = median(times[name])
        results[name] = {"median_s": med, "images_per_s": B / med, "ms_per_step": 1000 * med / steps,
                         "unet_calls": calls, "unet_batch": per_call, "times_s": times[name]}
    pipe_s, ref_s, floor_s = (results[n]["median_s"] for n in unet_calls)
    result = {
        "benchmark": NAME,
        "smoke": args.smoke,
        "machine": machine,
        "settings": {"model": source, "batch": B, "steps": steps, "rounds": args.rounds, "guidance_scale": args.guidance,
                     "scheduler": type(pipe.scheduler).__name__, "seed": args.seed,
                     "unet_parameters": sum(p.numel() for p in unet.parameters()),
                     "unet_block_out_channels": list(unet.config.block_out_channels),
                     "unet_down_block_types": list(unet.config.down_block_types)},
        "results": results,
        "ratios": {"pipeline_over_floor_time": pipe_s / floor_s, "reference_over_pipeline_time": ref_s / pipe_s,
                   "pipeline_overhead_ms_per_step": 1000 * (pipe_s - floor_s) / steps},
        "max_abs_diff_pipeline_vs_reference": max(diffs),
    }
    emit(NAME, result, to_markdown(result), args)
    return result


def to_markdown(r: dict) -> str:
    s, res, ratios = r["settings"], r["results"], r["ratios"]
    labels = {"pipeline": "`FashionDDPMPipeline.__call__` (1 batched CFG pass/step)",
              "reference_two_pass": "reference loop, 2 U-Net passes/step (diffusers examples style)",
              "unet_floor": "U-Net forward only, batch 2B (floor)"}
    rows = [[labels[n], f"{v['unet_calls']} x {v['unet_batch']}", v["median_s"], v["ms_per_step"], v["images_per_s"]]
            for n, v in res.items()]
    table = markdown_table(["variant", "U-Net calls x batch", "median s", "ms/step", "images/s"], rows)
    return "\n".join([
        f"# Sampling speed{' (smoke run: tiny random U-Net, not a real measurement)' if r['smoke'] else ''}",
        "",
        f"{s['batch']} images, {s['steps']} {s['scheduler']} steps, guidance {s['guidance_scale']}, same weights "
        f"({s['model']}; {s['unet_parameters']:,} parameters), median of {s['rounds']} interleaved rounds.",
        "",
        table,
        "",
        f"- pipeline / floor time: **{ratios['pipeline_over_floor_time']:.3f}** "
        f"(pipeline + scheduler overhead {ratios['pipeline_overhead_ms_per_step']:.2f} ms/step)",
        f"- reference / pipeline time: **{ratios['reference_over_pipeline_time']:.3f}**",
        f"- max |pipeline - reference| over all pixels (same latents and per-image generators): "
        f"{r['max_abs_diff_pipeline_vs_reference']:.3g}",
    ])


if __name__ == "__main__":
    main()
