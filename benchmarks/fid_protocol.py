"""The standard protocol's numbers: Inception FID of --num-images generated images (the model's default sampling, one
seed rule) against all 60,000 training images and against the 10,000 test images, and the bias-free FID∞ (Chong &
Forsyth 2020): FID against the test set at several N (class-balanced first images of the same set), a line fitted in
1/N, its value at 1/N = 0. Floors: the same distances for as many real training images (against the training set
they are part of the reference, so that floor is a lower bound, not a like-for-like baseline; the test-set floor is).

Generated images' features are kept in --work-dir in shards of --shard images (written whole or not at all), so a
killed run goes on where it stopped; the real images' features are cached like every evaluation's
(`pipeline.evaluation.inception.real_features`).

  python -m benchmarks.fid_protocol --num-images 10000 --sizes 2000,4000,6000,8000,10000 --threads 2
  python -m benchmarks.fid_protocol --smoke
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmarks.harness import RESULTS, benchmark_pipeline, emit, markdown_table, parser, torch_machine
from pipeline.checks import comma_separated

NAME = "fid_protocol"
TRAIN_IMAGES, TEST_IMAGES = 60000, 10000


def parse_args(argv=None):
    p = parser(NAME, __doc__, model=True, threads=True, device=True, seed=0, out=RESULTS,
               smoke="tiny random model, 40 images against 40 real ones")
    p.add_argument("--num-images", type=int, default=10000, help="generated images, a multiple of 10 (default 10000)")
    p.add_argument("--sizes", type=comma_separated(int, "integers", "2000,4000,10000"), default=None,
                   help="the N of FID∞'s fit, each a multiple of 10 up to --num-images (default: 5 even steps)")
    p.add_argument("--shard", type=int, default=1000, help="generated images per kept shard (default 1000)")
    p.add_argument("--work-dir", default="runs/fid_protocol", help="where the generated features are kept")
    args = p.parse_args(argv)
    if args.smoke:
        args.num_images, args.sizes, args.shard = 40, [20, 30, 40], 20
    sizes = args.sizes or [args.num_images * k // 5 for k in range(1, 6)]
    if args.num_images < 20 or args.num_images % 10 or any(n % 10 or not 10 <= n <= args.num_images for n in sizes) \
            or len(set(sizes)) < 2 or args.shard < 10 or args.shard % 10:
        raise SystemExit(f"error: --num-images {args.num_images} and --shard {args.shard} must be multiples of 10 (>= 20, "
                         f">= 10), --sizes {sizes} at least two distinct multiples of 10 up to --num-images")
    args.sizes = sorted(set(sizes))
    return args


def generated_features(pipe, source: str, args, work: Path, device) -> tuple[np.ndarray, np.ndarray, float]:
    """Inception features and class ids of the generated images, shard by shard (image j of class c: the seed rule),
    each shard kept in `work`; and the seconds spent generating and extracting in this run."""
    from pipeline.evaluation.inception import inception_features
    from pipeline.io import atomic_path
    from pipeline.sampling import generate

    per_class, shard = args.num_images // 10, args.shard // 10
    features, labels, seconds = [], [], 0.0
    for start in range(0, per_class, shard):
        path = work / f"features_{start:06d}.npz"
        if not path.is_file():
            began = time.perf_counter()
            samples = generate(pipe, None, min(shard, per_class - start), args.seed, start_index=start)
            found = inception_features(samples.images, device=device)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no ".npz" to its name
                np.savez(f, features=found.astype(np.float32), labels=np.asarray(samples.class_ids))
            seconds += time.perf_counter() - began
            print(f"{source}: images {start}..{start + shard - 1} of each class in {time.perf_counter() - began:.0f} s",
                  flush=True)
        with np.load(path) as kept:
            features.append(kept["features"].astype(np.float64))
            labels.append(kept["labels"])
    return np.concatenate(features), np.concatenate(labels), seconds


def first_per_class(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first n / 10 images of each class (the seed rule's first images: a set grown by N)."""
    return np.concatenate([np.flatnonzero(labels == c)[:n // 10] for c in np.unique(labels)])


def fid_infinity(sizes: list[int], fids: list[float]) -> tuple[float, float]:
    """(FID∞, slope): the least-squares line FID_N = FID∞ + slope / N, at 1/N = 0 (Chong & Forsyth 2020)."""
    slope, intercept = np.polyfit(1.0 / np.asarray(sizes, float), np.asarray(fids, float), 1)
    return float(intercept), float(slope)


def distances(gen: np.ndarray, labels: np.ndarray, args, device) -> dict:
    """FID against train and test, the FID-at-N series against test with its FID∞, and the real floors."""
    from pipeline.evaluation.inception import INCEPTION_NAME, fid_from_features, inception_features, real_features

    extract = lambda x: inception_features(x, device=device)  # noqa: E731
    train_size, test_size = (40, 40) if args.smoke else (TRAIN_IMAGES, TEST_IMAGES)
    train = real_features("train", train_size, INCEPTION_NAME, extract)["features"]
    test = real_features("test", test_size, INCEPTION_NAME, extract)["features"]
    floor = real_features("train", args.num_images, INCEPTION_NAME, extract)["features"]  # real images, same N
    series = [fid_from_features(gen[first_per_class(labels, n)], test) for n in args.sizes]
    floors = [fid_from_features(floor[:n], test) for n in args.sizes]  # a balanced subset: its first n are balanced
    return {"fid_vs_train": fid_from_features(gen, train), "fid_vs_test": fid_from_features(gen, test),
            "floor_vs_train": fid_from_features(floor, train), "floor_vs_test": fid_from_features(floor, test),
            "fid_at_n": dict(zip(map(str, args.sizes), series)), "floor_at_n": dict(zip(map(str, args.sizes), floors)),
            "fid_infinity": fid_infinity(args.sizes, series)[0], "floor_infinity": fid_infinity(args.sizes, floors)[0],
            "reference_sizes": {"train": train_size, "test": test_size}}


def markdown(result: dict) -> str:
    rows = [["against the training set", f"{result['fid_vs_train']:.2f}", f"{result['floor_vs_train']:.2f}"],
            ["against the test set", f"{result['fid_vs_test']:.2f}", f"{result['floor_vs_test']:.2f}"],
            ["FID∞ against the test set", f"{result['fid_infinity']:.2f}", f"{result['floor_infinity']:.2f}"]]
    series = ", ".join(f"N = {n}: {v:.2f}" for n, v in result["fid_at_n"].items())
    return "\n\n".join([
        f"# {NAME}{' (smoke run: not a measurement)' if result['smoke'] else ''}",
        f"`{result['model']}`, {result['sampling']}, {result['num_images']} images, seed {result['seed']}; floors: "
        f"{result['num_images']} real training images.",
        markdown_table(["Inception FID", "model", "real floor"], rows),
        f"FID against the test set at each N: {series}.",
    ])


def main(argv=None):
    args = parse_args(argv)
    from pipeline.models import check_device
    from pipeline.settings import SamplingSettings

    device = check_device(args.device) or "cpu"
    machine = torch_machine(args.threads, device)
    pipe, source = benchmark_pipeline(args.model, args.smoke, device=device)
    work = Path(args.work_dir) / ("smoke" if args.smoke else Path(source).name) / f"seed{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    gen, labels, seconds = generated_features(pipe, source, args, work, device)
    result = {"model": source, "sampling": SamplingSettings.resolve(pipe).describe(), "num_images": args.num_images,
              "seed": args.seed, "sizes": args.sizes, **distances(gen, labels, args, device),
              "seconds_this_run": round(seconds, 1), "smoke": args.smoke, "machine": machine}
    emit(NAME if not args.smoke else f"{NAME}_smoke", result, markdown(result), args)
    return result


if __name__ == "__main__":
    main()
