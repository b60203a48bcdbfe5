"""Peak memory of `fashion-ddpm synthesize` at two dataset sizes: it should not grow with N.

`pipeline.synthesis` generates and writes shards of at most --shard-size images and assembles the final dataset from
files (memory-mapped arrow, streamed parquet), so the peak resident set should be the same for 2,500 and for 25,000
images. Both sizes are whole shards of 250 images per class, so both run the same pipeline batches (100, 100, 50):
with fewer images per class the batches, and with them the U-Net's activations, are smaller, which lowers the peak
for a reason that has nothing to do with N. Each size and format runs in a fresh worker process (a tiny random
U-Net, so the U-Net's own memory is small and any growth with N would stand out) that reports its peak RSS (VmHWM
from /proc/self/status, else getrusage ru_maxrss) and its RSS just before synthesizing (after imports and model
set-up). For scale the table also gives what holding every image as a float32 tensor would take (N x 28 x 28 x 4 B).

  python -m benchmarks.synthesize_memory                      # 250 and 2500 per class (2,500 / 25,000 images), 3 formats
  python -m benchmarks.synthesize_memory --sizes 250,5000 --formats arrow
  python -m benchmarks.synthesize_memory --smoke              # seconds
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.harness import RESULTS, TINY_UNET, emit, machine_info, markdown_table, parser, report_to_parent, rss_mb, run_worker, smoke_pipeline

NAME = "synthesize_memory"
SAMPLING = {"steps": 1, "guidance": 1.0}  # one U-Net pass per image: the writing dominates
SEED = 0  # of the tiny U-Net's weights and of the synthesized images


def _rss_mb() -> dict:
    """Current (VmRSS) and peak (VmHWM) resident set of this process in MB."""
    peak = rss_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB
    return {"rss_mb": rss_mb("VmRSS"), "peak_rss_mb": peak}


def worker(per_class: int, fmt: str, out: str, shard_size: int, threads: int) -> dict:
    import torch

    from pipeline.synthesis import synthesize

    torch.set_num_threads(threads)
    pipe = smoke_pipeline(SEED)
    import datasets  # noqa: F401  (imported here so that "before" includes every library)

    before = _rss_mb()
    start = time.perf_counter()
    summary = synthesize(pipe, out, per_class, seed=SEED, fmt=fmt, shard_size=shard_size, progress=False, **SAMPLING)
    seconds = time.perf_counter() - start
    after = _rss_mb()
    return {"format": fmt, "per_class": per_class, "images": summary["images"], "shard_size": shard_size,
            "rss_before_mb": round(before["rss_mb"] or 0, 1), "peak_rss_mb": round(after["peak_rss_mb"], 1),
            "growth_mb": round(after["peak_rss_mb"] - (before["rss_mb"] or 0), 1), "seconds": round(seconds, 2),
            "all_images_as_float32_mb": round(summary["images"] * 28 * 28 * 4 / 2**20, 1)}


def main(argv=None):
    p = parser(NAME, __doc__, threads=1, out=RESULTS, smoke="2 and 6 per class, shards of 4, arrow only")
    p.add_argument("--sizes", default="250,2500", help="images per class, comma-separated (default 250,2500)")
    p.add_argument("--formats", default="arrow,parquet,imagefolder")
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument("--worker", nargs=3, metavar=("PER_CLASS", "FORMAT", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        per_class, fmt, out = args.worker
        report_to_parent(worker(int(per_class), fmt, out, args.shard_size, args.threads))
        return
    sizes = [2, 6] if args.smoke else [int(s) for s in args.sizes.split(",")]
    formats = ["arrow"] if args.smoke else args.formats.split(",")
    shard_size = 4 if args.smoke else args.shard_size
    machine = machine_info(args.threads)
    runs = []
    with tempfile.TemporaryDirectory(prefix="synth-mem-") as tmp:
        for fmt in formats:
            for per_class in sizes:
                out = Path(tmp) / f"{fmt}-{per_class}"
                row = run_worker(NAME, [str(per_class), fmt, str(out), "--shard-size", str(shard_size), "--threads",
                                        str(args.threads)], f"{fmt} {per_class}", args.threads)
                runs.append(row)
                print(f"{fmt} {row['images']} images: peak RSS {row['peak_rss_mb']} MB (before {row['rss_before_mb']} MB, "
                      f"growth {row['growth_mb']} MB) in {row['seconds']} s", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    by_format = {}
    for fmt in formats:
        group = [r for r in runs if r["format"] == fmt]
        by_format[fmt] = {"peak_rss_ratio_large_over_small": round(group[-1]["peak_rss_mb"] / group[0]["peak_rss_mb"], 3),
                          "peak_rss_difference_mb": round(group[-1]["peak_rss_mb"] - group[0]["peak_rss_mb"], 1)}
    command = (f"python -m benchmarks.{NAME} --smoke" if args.smoke else
               f"python -m benchmarks.{NAME} --sizes {','.join(map(str, sizes))} --formats {','.join(formats)} "
               f"--shard-size {shard_size} --threads {args.threads}")
    result = {"benchmark": NAME, "smoke": args.smoke, "sampling": SAMPLING, "model": "tiny random U-Net "
              f"{TINY_UNET['block_out_channels']}", "seed": SEED, "runs": runs, "by_format": by_format, "command": command,
              "machine": machine}
    table = markdown_table(
        ["format", "images", "RSS before (MB)", "peak RSS (MB)", "growth (MB)", "all images as float32 (MB)", "seconds"],
        [[r["format"], r["images"], r["rss_before_mb"], r["peak_rss_mb"], r["growth_mb"], r["all_images_as_float32_mb"],
          r["seconds"]] for r in runs])
    verdict = "; ".join(f"{fmt}: peak {v['peak_rss_difference_mb']:+.1f} MB from {runs[0]['images']:,} to "
                        f"{runs[-1]['images']:,} images" for fmt, v in by_format.items())
    markdown = "\n\n".join([
        f"# {NAME}{' (smoke run)' if args.smoke else ''}",
        f"Peak resident memory of `pipeline.synthesis.synthesize` (one fresh process per row; tiny random U-Net, "
        f"{SAMPLING['steps']} step, guidance {SAMPLING['guidance']:g}, shards of {shard_size}). "
        "Growth = peak minus the RSS just before synthesizing.",
        table,
        f"Peak change with N: {verdict}.",
    ])
    emit(NAME, result, markdown, args)


if __name__ == "__main__":
    main()
