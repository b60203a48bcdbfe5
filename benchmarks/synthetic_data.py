"""How useful are the generated images as training data? Classification Accuracy Score and data augmentation.

Classification Accuracy Score (CAS, Ravuri & Vinyals 2019, "Classification Accuracy Score for Conditional Generative
Models"): train a classifier on generated images only and test it on the real Fashion-MNIST test set (10,000 images).
Beside it, the same classifier trained the same way on real training images. Rows:

* CAS: N synthetic images per class (the model's default guidance: w and its noise-level interval) vs N real training images per class, and vs all
  60,000 real training images;
* augmentation: 10 and 100 real images per class alone vs the same real images plus the N synthetic images per class
  (the union; batches are drawn uniformly from it);
* guidance: CAS for w = 1 (no guidance), the model's default guidance and a high w (guided at every step);
* time to synthesize one image with the sampler used (from the `synthesize` manifest: sampling time only).

Every synthetic set is a real `fashion-ddpm synthesize` output (pipeline.synthesis, arrow format, seed 0), cached in
--work-dir under a name holding the model's fingerprint and the settings, so a rerun reuses it (and an interrupted
synthesis resumes). The real subsets of k images per class are drawn per classifier seed (so their ± includes which
images were drawn); the synthetic set is the same for all seeds (its ± is the classifier's alone).

The classifier and its recipe, fixed for every row: pipeline/evaluation/cas.py (a two-block CNN of 421,642 parameters,
deliberately NOT the project's judge; Adam, cosine decay to 0, batch 128, a FIXED number of updates per run: default
3,000 = 6.4 epochs of 60,000 images, where the accuracy on all real data levels off at ~90 %; 500 updates capped it at
84.6 %). The test set is used once, at the end; every number is reproducible on the CPU (GPU kernels are not
bit-reproducible: runs agree to ~0.1 point).

  python -m benchmarks.synthetic_data --device cuda --jobs 6                        # the real run, shipped model (minutes on an H200)
  python -m benchmarks.synthetic_data --threads 2 --updates 500                     # on 2 CPU cores (hours; see its estimate)
  python -m benchmarks.synthetic_data --smoke                                        # tiny random model, seconds
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import REPO, RESULTS, SHIPPED_MODEL_DIR, benchmark_pipeline, emit, markdown_table, parser, repo_relative, torch_machine
from pipeline.checks import comma_separated
from pipeline.evaluation.cas import ARCHITECTURE, build_classifier, calibrate, mean_std, per_class_subset, train_and_test

NAME = "synthetic_data"

def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")


def guidance_label(settings) -> str:
    """'w=2' or 'w=2, t/T in [0.17, 0.88]' (guidance at every step names no interval)."""
    interval = settings.interval
    return f"w={settings.guidance:g}" + ("" if settings.every_step else f", t/T in [{interval[0]:g}, {interval[1]:g}]")


def synthetic_sets(pipe, model_name: str, settings_list: list, per_class: int, work_dir: Path, smoke: bool) -> list[dict]:
    """One `synthesize` output per `SamplingSettings` (made, resumed or reused), with its sampling time per image."""
    from pipeline.sampling import generate
    from pipeline.synthesis import load_synthetic, model_fingerprint, prepare, read_manifest

    sha = model_fingerprint(pipe)
    jobs = []
    for settings in settings_list:
        label = guidance_label(settings)
        limited = "" if settings.every_step else f"_i{settings.interval[0]:g}-{settings.interval[1]:g}"
        folder = work_dir / (f"{slug(Path(model_name).name or model_name)}-{sha[:10]}_{slug(settings.sampler)}{settings.steps}"
                             f"_w{settings.guidance:g}{limited}_n{per_class}_seed0")
        command = shlex.join(["fashion-ddpm", "synthesize", "--model", model_name, "--per-class", str(per_class),
                              *settings.cli_args(), "--seed", "0", "--out", str(folder)])
        jobs.append((label, settings, folder, prepare(pipe, folder, per_class, None, 0, fmt="arrow", model_name=model_name,
                                                      command=command, settings=settings)))
    missing = {label: (settings, sum(s.count for s in job.shards if not job.done(s)))
               for label, settings, _, job in jobs if job.state != "complete"}
    if missing:
        rates = {}
        for label, (settings, _) in missing.items():
            start = time.perf_counter()
            generate(pipe, [0], 4, seed=123, settings=settings)
            rates[label] = (time.perf_counter() - start) / 4
        estimate = sum(n * rates[label] for label, (_, n) in missing.items())
        print(f"synthesis: {sum(n for _, n in missing.values()):,} images to generate; estimated {estimate / 60:.1f} min at "
              f"{', '.join(f'{rates[k]:.3f} s/img ({k})' for k in rates)} (batches of 4; full batches are faster)", flush=True)
    sets = []
    for label, settings, folder, job in jobs:
        if job.state == "complete":
            print(f"{folder} is already complete; reusing it", flush=True)
        else:
            print(f"synthesizing {folder} ({job.num_images:,} images, {label})", flush=True)
            job.run(progress=not smoke)
        stats = read_manifest(folder)["stats"]
        dataset = load_synthetic(folder)
        sets.append({"guidance": settings.guidance, "guidance_interval": list(settings.interval if settings.guided else (0.0, 1.0)),
                     "label": label, "dir": folder.name, "images": stats["images"],
                     "seconds_per_image": stats["seconds_per_image"], "sampling_seconds": stats["sampling_seconds"],
                     "torch_threads": stats["torch_threads"], "reused": job.state == "complete", "dataset": dataset})
    return sets


def card_section(result: dict, result_file: str) -> str:
    """The model card's "As training data" section: every row of a result of this script, and how it was made."""
    rows = [[r["name"], f"{r['train_images']:,}", f"{r['mean'] * 100:.2f} ± {r['std'] * 100:.2f}"] for r in result["rows"]]
    speeds = ", ".join(f"{s['label']}: {s['seconds_per_image']:.3f} s" for s in result["synthetic_sets"])
    return "\n\n".join([
        f"Classification Accuracy Score (Ravuri & Vinyals 2019): a fixed small CNN ({result['classifier']['parameters']:,} "
        f"parameters, {result['classifier']['updates']} updates of {result['classifier']['batch_size']}) trained on the "
        f"data below and tested on the {result['test_images']:,} real Fashion-MNIST test images; synthetic images from "
        f"`fashion-ddpm synthesize` with {result['sampler']} {result['steps']} steps; {len(result['seeds'])} classifier "
        "seeds, mean ± std.",
        markdown_table(["training data", "images", "test accuracy %"], rows),
        f"Synthesis time per image ({result['sampler']} {result['steps']} steps, torch threads "
        f"{result['synthetic_sets'][0]['torch_threads']}): {speeds}.",
        f"Measured with `{result.get('reproduce') or result['command']}` ({result_file})"
        + (" - a partial run: the rows not listed were not measured." if result.get("partial") else "."),
    ])


def update_model_card(result: dict, result_file: str, model_dir: str):
    from pipeline.training.model_card import fill_section

    if result.get("smoke"):
        raise SystemExit("error: a smoke run (tiny random model) is not a measurement; it does not go into a model card")
    card = Path(model_dir) / "README.md"
    if not card.is_file():
        raise SystemExit(f"error: filling the model card needs a local model folder with a README.md; {card} is not a file")
    fill_section(card, "synthetic", "As training data", card_section(result, result_file))
    print(f"filled the 'As training data' section of {card}")


def to_tensors(dataset):
    import numpy as np
    import torch

    images = np.stack([np.asarray(image.convert("L")) for image in dataset["image"]])
    return torch.from_numpy(images), torch.tensor(list(dataset["label"]), dtype=torch.int64)


# ---------------------------------------------------------------------------------------------------- the run
int_list = comma_separated(int, "integers", "0,1,2")  # argparse type


def parse_args(argv=None):
    """The flags, checked; the seeds and real sizes as lists of ints; a smoke run's sizes filled in."""
    p = parser(NAME, __doc__, model=True, threads=True, device=True, out=RESULTS,
               smoke="tiny random model, 10 images per class, 2 sampler steps, 10 updates, 500 test images")
    p.add_argument("--per-class", type=int, default=1000, help="synthetic images per class (and real for the CAS row)")
    p.add_argument("--seeds", type=int_list, default="0,1,2", help="classifier seeds, comma-separated (>= 3 for a mean ± std)")
    p.add_argument("--guidance", default="1,default,4", help="guidance values for the CAS rows; 'default' = the model's (w and guidance interval), "
                   "a number = that w at every step")
    p.add_argument("--sampler", default=None, help="sampler name (pipeline.schedulers.SAMPLERS; default: the model's own)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's, or the named sampler's)")
    p.add_argument("--real-sizes", type=int_list, default="10,100", help="real images per class for the augmentation rows")
    p.add_argument("--updates", type=int, default=3000, help="optimizer updates per classifier run (default 3000)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--jobs", type=int, default=1, help="classifier runs trained at once, one process each (a GPU fits "
                   "several; on a CPU keep 1 and use --threads)")
    p.add_argument("--data-dir", default=None, help="folder with the Fashion-MNIST IDX files (default: the usual search)")
    p.add_argument("--work-dir", default=str(REPO / "runs" / "synthetic_data"), help="where the synthetic sets are cached")
    p.add_argument("--name", default=NAME)
    p.add_argument("--update-model-card", action="store_true", help="fill the model card's 'As training data' section "
                   "(--model must be a local folder)")
    p.add_argument("--card-from", default=None, help="an earlier result JSON of this script: fill the card of its model "
                   "(or --model) from it, without running anything")
    args = p.parse_args(argv)
    if args.card_from:
        return args
    if args.smoke:
        args.per_class, args.updates, args.batch_size, args.real_sizes, args.steps = 10, 10, 32, [2, 5], 2
    if len(args.seeds) < 1 or args.per_class < 1 or args.updates < 1 or min(args.real_sizes) < 1 or args.jobs < 1:
        raise SystemExit("error: --seeds, --per-class, --updates, --real-sizes and --jobs must be positive")
    return args


def load_data(args):
    """(train, test) as (images, labels) pairs of uint8 / int64 tensors: all of Fashion-MNIST, or a smoke run's 2,000
    training and 500 test images."""
    from pipeline.data import load_dataset

    train = load_dataset(args.data_dir, split="train", data_flag="--data-dir DIR")
    test = load_dataset(args.data_dir, split="test", data_flag="--data-dir DIR")
    if args.smoke:
        return (train.images[:2000], train.labels[:2000]), (test.images[:500], test.labels[:500])
    return (train.images, train.labels), (test.images, test.labels)


def guidance_settings(pipe, args) -> tuple:
    """(the model's default `SamplingSettings`, one per --guidance value with the default among them), on the run's
    sampler and steps, which are resolved into args.sampler / args.steps."""
    from pipeline.settings import EVERY_STEP, SamplingSettings

    default = SamplingSettings.resolve(pipe, sampler=args.sampler, steps=args.steps)  # the model's guidance
    args.sampler, args.steps = default.sampler, default.steps
    # a number = that w at every step
    guidances = list(dict.fromkeys(default if g.strip() == "default" else
                                   SamplingSettings(args.sampler, args.steps, float(g), EVERY_STEP)
                                   for g in args.guidance.split(",")))
    if default not in guidances:
        guidances.append(default)
    return default, guidances


def synthetic_name(per_class: int, label: str) -> str:
    return f"synthetic {per_class}/class ({label})"


def mixed_name(k: int, per_class: int, label: str) -> str:
    return f"real {k}/class + {synthetic_name(per_class, label)}"


def rows_spec(train, synthetic: dict, per_class: int, real_sizes: list[int], default_label: str) -> list[tuple]:
    """The rows, in order, as (name, group, build) with build(seed) -> (images, labels) to train on: each synthetic set
    (guidance), k real images per class and all of them (CAS), and the augmentation pairs."""
    import torch

    real_images, real_labels = train

    def real(k):
        return lambda seed: (real_images[(ids := per_class_subset(real_labels, k, seed))], real_labels[ids])

    def mixed(k, label):
        def build(seed):
            ids = per_class_subset(real_labels, k, seed)
            images, labels = synthetic[label]
            return torch.cat([real_images[ids], images]), torch.cat([real_labels[ids], labels])
        return build

    spec = [(synthetic_name(per_class, label), "guidance", lambda seed, label=label: synthetic[label]) for label in synthetic]
    spec += [(f"real {per_class}/class", "CAS", real(per_class)),
             (f"real all ({len(real_labels):,})", "CAS", lambda seed: (real_images, real_labels))]
    for k in real_sizes:
        spec += [(f"real {k}/class", "augmentation", real(k)),
                 (mixed_name(k, per_class, default_label), "augmentation", mixed(k, default_label))]
    return spec


def run_classifiers(spec: list[tuple], args, test, device: str):
    """Trains and tests the classifier for every row and seed (--jobs runs at once); yields the rows measured so far
    after each row."""
    import torch

    test_images, test_labels = test
    pool = pending = None
    if args.jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Several classifiers at once, one per process: this small CNN leaves a GPU waiting on Python and kernel
        # launches, so processes fill it (threads would share one interpreter lock). 'spawn': CUDA cannot fork.
        pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=torch.set_num_threads, initargs=(args.threads or 1,))
        # numpy arrays travel through the pipe by value; torch tensors would go through /dev/shm, often tiny in containers
        pending = [[pool.submit(train_and_test, *(t.numpy() for t in (*build(seed), test_images, test_labels)), seed,
                                args.updates, args.batch_size, args.lr, device) for seed in args.seeds] for _, _, build in spec]
    try:
        rows = []
        for i, (name, group, build) in enumerate(spec):
            seconds = time.perf_counter()
            accuracies = ([job.result() for job in pending[i]] if pending else
                          [train_and_test(*build(seed), test_images, test_labels, seed, args.updates, args.batch_size, args.lr,
                                          device) for seed in args.seeds])
            mean, std = mean_std(accuracies)
            rows.append({"name": name, "group": group, "train_images": len(build(args.seeds[0])[1]), "accuracies": accuracies,
                         # with --jobs the rows train together: a row's own time is not measured (None), only the total
                         "mean": mean, "std": std, "seconds": None if pending else round(time.perf_counter() - seconds, 1)})
            print(f"{name}: {mean:.4f} ± {std:.4f} ({', '.join(f'{a:.4f}' for a in accuracies)})", flush=True)
            yield rows
    finally:
        if pool is not None:
            pool.shutdown()


def reproduce(args, model_name: str) -> str:
    """The command that measures this again, the sampler and steps it resolved named."""
    if args.smoke:
        return f"python -m benchmarks.{NAME} --smoke"
    return (f"python -m benchmarks.{NAME} --model {model_name} --per-class {args.per_class} --seeds {','.join(map(str, args.seeds))} "
            f"--guidance {args.guidance} --sampler {args.sampler} --steps {args.steps} --real-sizes {','.join(map(str, args.real_sizes))} "
            f"--updates {args.updates} --batch-size {args.batch_size}" + (f" --threads {args.threads}" if args.threads else "")
            + (f" --device {args.device}" if args.device else "") + (f" --jobs {args.jobs}" if args.jobs > 1 else ""))


@dataclass
class Study:
    """What a report of this run says besides its rows."""

    args: object
    model_name: str
    model_sha256: str
    default: object  # the model's SamplingSettings
    sets: list[dict]  # synthetic_sets' records, without their datasets
    num_rows: int
    real_count: int  # real training images available (the "real all" row)
    test_count: int
    classifier: dict
    estimate: float  # classifier seconds estimated before the runs
    started: float
    machine: dict


def report(study: Study, rows: list[dict]) -> dict:
    """Writes the JSON and Markdown of the rows measured so far: a run stopped after k rows keeps k rows."""
    from pipeline.settings import EVERY_STEP

    args, default_label, per_class = study.args, guidance_label(study.default), study.args.per_class
    by_name = {r["name"]: r for r in rows}
    partial = len(rows) < study.num_rows

    def acc(name):
        r = by_name.get(name)
        return "not measured (run stopped)" if r is None else f"{r['mean'] * 100:.2f} ± {r['std'] * 100:.2f}"

    def images(name):
        return f"{by_name[name]['train_images']:,}" if name in by_name else "–"

    cas_table = markdown_table(["training data", "images", "test accuracy % (mean ± std)"],
                               [[n, images(n), acc(n)] for n in (synthetic_name(per_class, default_label),
                                                                 f"real {per_class}/class", f"real all ({study.real_count:,})")])
    aug_table = markdown_table(["real per class", "real only", f"real + synthetic {per_class}/class ({default_label})"],
                               [[k, acc(f"real {k}/class"), acc(mixed_name(k, per_class, default_label))] for k in args.real_sizes])
    guidance_table = markdown_table(
        ["guidance", "CAS % (mean ± std)", "s / image", "sampler", "threads", "images"],
        [[s["label"] + (" (model default)" if s["label"] == default_label else ""), acc(synthetic_name(per_class, s["label"])),
          s["seconds_per_image"], f"{args.sampler} {args.steps}", ",".join(map(str, s["torch_threads"])), s["images"]]
         for s in study.sets])
    total = time.perf_counter() - study.started
    default_interval = study.default.interval if study.default.guided else EVERY_STEP
    result = {"benchmark": NAME, "smoke": args.smoke, "partial": partial, "model": study.model_name,
              "model_sha256": study.model_sha256, "sampler": args.sampler, "steps": args.steps,
              "per_class": per_class, "seeds": args.seeds, "default_guidance": study.default.guidance,
              "default_guidance_interval": list(default_interval), "test_images": study.test_count,
              "classifier": study.classifier, "rows": rows, "synthetic_sets": study.sets,
              "estimated_classifier_seconds": round(study.estimate, 1), "total_seconds": round(total, 1),
              "command": reproduce(args, study.model_name), "machine": study.machine}
    classifier = study.classifier
    markdown = "\n\n".join([
        f"# {args.name}{' (smoke run: tiny random model, not a real measurement)' if args.smoke else ''}"
        f"{f' (partial: {len(rows)} of {study.num_rows} rows; the run stopped before the rest)' if partial else ''}",
        f"Classification Accuracy Score (Ravuri & Vinyals 2019): a fixed small CNN trained on generated images only, "
        f"tested on the real Fashion-MNIST test set ({study.test_count:,} images); beside it the same CNN on real training "
        f"images. Model `{study.model_name}`, sampler {args.sampler} {args.steps} steps, synthetic sets from `fashion-ddpm "
        f"synthesize` (seed 0). {len(args.seeds)} classifier seeds ({','.join(map(str, args.seeds))}); mean ± sample std.",
        "## CAS: synthetic vs real training data\n\n" + cas_table,
        "## Augmentation: few real images, with and without the synthetic set\n\n" + aug_table,
        "## Guidance: CAS and synthesis time per image\n\n" + guidance_table,
        f"Classifier: {ARCHITECTURE} ({classifier['parameters']:,} parameters); {classifier['optimizer']}; "
        f"{args.updates} updates of {args.batch_size} per run whatever the training set's size; {classifier['input']}; the test "
        "set is used once, at the end. Real subsets are drawn per seed; the synthetic sets are fixed.",
        f"Total time {total / 60:.1f} min (classifier estimate before the runs, one at a time: {study.estimate / 60:.1f} min; "
        f"{args.jobs} run(s) at once).",
    ])
    emit(args.name, result, markdown, args)
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.card_from:
        earlier = json.loads(Path(args.card_from).read_text())
        update_model_card(earlier, repo_relative(args.card_from), args.model or earlier["model"])
        return
    from pipeline.models import check_device
    from pipeline.synthesis import model_fingerprint

    device = check_device(args.device) or "cpu"
    started = time.perf_counter()
    machine = torch_machine(args.threads, device)
    train, test = load_data(args)
    pipe, model_name = benchmark_pipeline(args.model, args.smoke, device=device)
    default, guidances = guidance_settings(pipe, args)

    calibration = calibrate(args.updates, args.batch_size, len(test[1]), device)
    n_runs = (len(guidances) + 2 + 2 * len(args.real_sizes)) * len(args.seeds)
    estimate = n_runs * calibration["seconds_per_run"]
    print(f"classifier: {n_runs} runs x {args.updates} updates of {args.batch_size} at {calibration['seconds_per_update']:.3f} "
          f"s/update on this machine now -> estimated {estimate / 60:.1f} min one at a time (plus synthesis of missing sets)",
          flush=True)

    sets = synthetic_sets(pipe, model_name, guidances, args.per_class, Path(args.work_dir), args.smoke)
    synthetic = {s["label"]: to_tensors(s.pop("dataset")) for s in sets}
    spec = rows_spec(train, synthetic, args.per_class, args.real_sizes, guidance_label(default))
    classifier = {"architecture": ARCHITECTURE, "parameters": sum(p.numel() for p in build_classifier().parameters()),
                  "optimizer": f"Adam lr {args.lr:g}, betas (0.9, 0.999), no weight decay, cosine decay to 0",
                  "updates": args.updates, "batch_size": args.batch_size, "input": "pixels / 255, no augmentation",
                  "seconds_per_update_calibrated": round(calibration["seconds_per_update"], 4), "parallel_runs": args.jobs}
    study = Study(args, model_name, model_fingerprint(pipe), default, sets, len(spec), len(train[1]), len(test[1]),
                  classifier, estimate, started, machine)
    for rows in run_classifiers(spec, args, test, device):
        result = report(study, rows)
    if args.update_model_card:
        update_model_card(result, repo_relative(str(Path(args.out) / f"{args.name}.json")), args.model or str(SHIPPED_MODEL_DIR))


if __name__ == "__main__":
    main()
