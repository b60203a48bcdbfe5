"""Fidelity evaluation of a trained pipeline: judge accuracy, judge-FID, Inception FID / KID, each beside its floor.

`evaluate` generates `num_per_class` images of every class (per-image seeds, so any image can be regenerated alone)
and scores them against the Fashion-MNIST **test** set:

* judge accuracy: the shipped classifier (`pipeline/judge.py`) predicts the class of each generated image;
* judge-FID / judge-KID: Fréchet / kernel distance in the judge's 128-d penultimate features;
* Inception FID / KID: the standard FID Inception-v3 pool3 features (`pipeline/inception.py`), unless skipped.

Every metric comes with its **floor**: the same metric for the same number N of real *training* images (a fixed,
class-balanced subset). FID is biased upwards at small N, so a model's FID only means something next to the FID that
real images reach at the same N. Real statistics are cached (see `pipeline.inception.cache_dir`).

Images come from `pipeline.sampling.generate` (the project's one seed rule). Command line: `fashion-ddpm evaluate`
(`pipeline/cli/evaluate.py`).
"""

from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ..checks import check_int
from ..images import labelled_grid
from ..io import atomic_save_image, atomic_write_json, atomic_write_text
from ..sampling import generate, resolve_settings, style_text
from ..settings import SamplingSettings
from .inception import (
    INCEPTION_NAME,
    fid_from_features,
    inception_features,
    inception_weights_path,
    kernel_distance,
    real_features,
    reference_available,
)
from .judge import JUDGE_WEIGHTS, FashionJudge, judge_fingerprint, judge_info

DEFAULT_REF_SIZE = 2000  # Inception reference: class-balanced Fashion-MNIST test images (cached after the first run)
DEFAULT_JUDGE_REF_SIZE = 10000  # judge reference: the whole test set (the judge is fast)


def _log(verbose: bool, message: str):
    if verbose:
        print(message, flush=True)


def _package_relative(path: str | Path) -> str:
    """`pipeline/weights/judge.safetensors` rather than a machine's absolute path (reports are committed)."""
    package_parent = Path(__file__).resolve().parents[2]
    try:
        return Path(path).resolve().relative_to(package_parent).as_posix()
    except ValueError:
        return str(path)


def _accuracy(preds: np.ndarray, labels: np.ndarray, class_names: list[str]) -> tuple[float, dict]:
    correct = preds == labels
    per_class = {name: float(correct[labels == c].mean()) for c, name in enumerate(class_names) if (labels == c).any()}
    return float(correct.mean()), per_class


def _per_class_fid(features: np.ndarray, labels: np.ndarray, reference: dict, class_names: list[str]) -> dict:
    """judge-FID of each class's images against the reference images of the same class (classes with >= 2 of each)."""
    ref_labels = np.asarray(reference["labels"])
    return {name: fid_from_features(features[labels == c], reference["features"][ref_labels == c])
            for c, name in enumerate(class_names) if (labels == c).sum() >= 2 and (ref_labels == c).sum() >= 2}


def evaluate(pipe, num_per_class: int, *, seed: int = 0, inception: bool = True, batch_size: int = 100,
             ref_size: int = DEFAULT_REF_SIZE, judge_ref_size: int = DEFAULT_JUDGE_REF_SIZE,
             judge_path: str | Path = JUDGE_WEIGHTS, data_dir: str | None = None, kid_subsets: int = 50,
             out_dir: str | Path | None = None, command: str | None = None, model_name: str | None = None,
             verbose: bool = True, settings: SamplingSettings | None = None, style=None, samples=None, **overrides) -> dict:
    """Generates N = num_per_class × classes images and scores them; see the module docstring.

    Args:
        pipe: a `FashionDDPMPipeline` (any device).
        num_per_class: images per class; N = num_per_class × number of classes must be >= 2 for FID.
        seed: the seed of `pipeline.sampling.generate` (image j of class c uses seed + 1e6 c + j).
        inception: also compute Inception FID / KID (~0.15-0.4 s per image on CPU, 3 × N images the first time).
        ref_size / judge_ref_size: test images in the Inception / judge reference statistics.
        data_dir: folder with the Fashion-MNIST IDX files (else $FASHION_MNIST_DIR, Debian's package, the Hub).
        out_dir: when given, writes `metrics.json`, `metrics.md` and `samples.png` there.
        command: the command line to record in the report (for reproducibility).
        settings / **overrides: how to sample (`SamplingSettings`, or its fields: sampler, steps, guidance, interval,
            rescale; unset ones take the model's defaults), as for `generate`.
        samples: the images already made with `generate(pipe, None, k, seed, settings=...)` for some k >=
            num_per_class (the first num_per_class of each class are scored: the images this call would make), so
            that one sampling serves several measurements; None = generate them here.

    Raises:
        ValueError / FileNotFoundError: bad arguments, or no Fashion-MNIST / Inception weights; raised before any
            image is generated.

    Returns:
        a JSON-serialisable dict (see `metrics.json`); distances are None where a metric was skipped.
    """
    class_names = list(pipe.class_names)
    num_images = _check_sizes(num_per_class, len(class_names), ref_size, judge_ref_size, batch_size)
    settings = resolve_settings(pipe, settings, overrides).check(pipe)
    pipe.parse_style(style)  # a bad style is named before any data is loaded
    judge_name = f"judge-{judge_fingerprint(judge_path)}"
    _check_references_at_hand(num_images, inception, ref_size, judge_ref_size, judge_name, data_dir)

    samples = _samples_to_score(pipe, samples, num_per_class, seed, batch_size, settings, style, class_names, verbose)
    labels = np.asarray(samples.class_ids)
    judge_scores = _judge_scores(samples.images, labels, class_names, judge_path, judge_name, judge_ref_size, data_dir,
                                 kid_subsets, pipe.device, verbose)
    result = {
        **_run_record(model_name, command, num_per_class, class_names, settings, samples, seed, pipe.device),
        **judge_scores,
        "judge_reference_test_images": judge_ref_size,
        **_inception_not_measured(inception, ref_size),
    }
    if inception:
        result.update(_inception_scores(samples.images, ref_size, data_dir, kid_subsets, pipe.device, verbose))

    if out_dir is not None:
        write_report(result, out_dir, samples.images)
    return result


def _check_sizes(num_per_class: int, num_classes: int, ref_size: int, judge_ref_size: int, batch_size: int) -> int:
    """N = num_per_class × num_classes, after checking every size `evaluate` takes."""
    check_int(num_per_class, "num_per_class")
    num_images = num_per_class * num_classes
    if num_images < 2:
        raise ValueError(f"FID needs at least 2 images, got {num_images} ({num_per_class} per class x {num_classes} classes)")
    for name, value in (("ref_size", ref_size), ("judge_ref_size", judge_ref_size)):
        if not 2 <= value <= 10000:
            raise ValueError(f"{name} must be in 2..10000 (Fashion-MNIST test images), got {value}")
    check_int(batch_size, "batch_size")
    return num_images


def _check_references_at_hand(num_images: int, inception: bool, ref_size: int, judge_ref_size: int, judge_name: str,
                              data_dir: str | None):
    """Everything the scores need must be at hand before minutes of generation: data (or its cached statistics) and
    the Inception weights; raises FileNotFoundError otherwise."""
    needed = [("test", judge_ref_size, judge_name), ("train", num_images, judge_name)]
    if inception:
        inception_weights_path()
        needed += [("test", ref_size, INCEPTION_NAME), ("train", num_images, INCEPTION_NAME)]
    reference_available(needed, data_dir)


def _samples_to_score(pipe, samples, num_per_class: int, seed: int, batch_size: int, settings: SamplingSettings, style,
                      class_names: list[str], verbose: bool):
    """The images to score: generated here, or the first `num_per_class` per class of the `samples` given."""
    num_images = num_per_class * len(class_names)
    if samples is None:
        _log(verbose, f"generating {num_images} images ({num_per_class} per class), seed {seed}, on {pipe.device} ...")
        samples = generate(pipe, None, num_per_class, seed, batch_size, settings=settings, style=style)
    else:
        samples = _first_per_class(samples, num_per_class, seed, settings, class_names)
    _log(verbose, f"  {settings.describe()}: {samples.seconds:.1f} s ({samples.seconds / num_images:.3f} s per image)")
    return samples


def _judge_scores(images: torch.Tensor, labels: np.ndarray, class_names: list[str], judge_path: str | Path,
                  judge_name: str, judge_ref_size: int, data_dir: str | None, kid_subsets: int, device,
                  verbose: bool) -> dict:
    """The judge's part of the result (its provenance, accuracy, judge-FID / KID), each beside the same number for
    N real training images."""
    judge = FashionJudge.load(judge_path, device=device)

    def judge_features(images):
        return judge.predict(images)[1]

    preds, feats = judge.predict(images)
    accuracy, per_class = _accuracy(preds, labels, class_names)
    test_ref = real_features("test", judge_ref_size, judge_name, judge_features, data_dir)
    train_ref = real_features("train", len(images), judge_name, judge_features, data_dir)
    with torch.no_grad():
        head = judge.head.eval()
        floor_preds = head(torch.from_numpy(train_ref["features"]).float().to(device)).argmax(1).cpu().numpy()
    floor_accuracy, floor_per_class = _accuracy(floor_preds, train_ref["labels"], class_names)
    judge_kid = kernel_distance(feats, test_ref["features"], kid_subsets)
    judge_kid_floor = kernel_distance(train_ref["features"], test_ref["features"], kid_subsets)
    info = judge_info(judge_path)
    scores = {
        "judge": {"weights": _package_relative(judge_path), "fingerprint": judge_name, "test_accuracy": info.get("test_accuracy")},
        "judge_accuracy": accuracy,
        "judge_accuracy_per_class": per_class,
        "judge_accuracy_floor": floor_accuracy,
        "judge_accuracy_floor_per_class": floor_per_class,
        "judge_fid": fid_from_features(feats, test_ref["features"]),
        "judge_fid_floor": fid_from_features(train_ref["features"], test_ref["features"]),
        # per class: the class's generated images vs the class's test images (biased at small N: read beside the floor)
        "judge_fid_per_class": _per_class_fid(feats, labels, test_ref, class_names),
        "judge_fid_floor_per_class": _per_class_fid(train_ref["features"], train_ref["labels"], test_ref, class_names),
        "judge_kid": judge_kid[0],
        "judge_kid_floor": judge_kid_floor[0],
    }
    _log(verbose, f"  judge accuracy {accuracy:.4f} (real training images: {floor_accuracy:.4f}); "
                  f"judge-FID {scores['judge_fid']:.3f} (floor {scores['judge_fid_floor']:.3f})")
    return scores


def _run_record(model_name: str | None, command: str | None, num_per_class: int, class_names: list[str],
                settings: SamplingSettings, samples, seed: int, device) -> dict:
    """What was evaluated and how: the model, the command, N, the sampling settings, the seed, the machine, the time."""
    num_images = num_per_class * len(class_names)
    return {
        "model": model_name,
        "command": command,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "num_per_class": num_per_class,
        "num_images": num_images,
        "class_names": class_names,
        # the keys every committed result has (SamplingSettings.from_json reads them back)
        "guidance_scale": settings.guidance,
        "guidance_interval": list(settings.interval) if settings.guided else None,
        "guidance_rescale": settings.rescale,
        "sampler": settings.sampler,
        "steps": settings.steps,
        **({"timesteps": list(settings.timesteps)} if settings.timesteps else {}),  # a searched schedule
        **({"style_guidance_scale": settings.style_guidance} if settings.style_guidance is not None else {}),
        **({"guide_scale": settings.guide} if settings.guide is not None else {}),  # autoguidance
        **({"style": samples.style} if samples.style else {}),  # a style model's request (percentiles per attribute)
        "seed": seed,
        "device": str(device),
        "hardware": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        "generation_seconds": round(samples.seconds, 3),
        "time_per_image_s": round(samples.seconds / num_images, 4),
    }


def _inception_not_measured(inception: bool, ref_size: int) -> dict:
    """The Inception part of the result before (or without) measuring it: None where a metric is not measured."""
    return {
        "inception": inception,
        "inception_fid": None,
        "inception_fid_floor": None,
        "inception_kid": None,
        "inception_kid_std": None,
        "inception_kid_floor": None,
        "inception_reference_test_images": ref_size if inception else None,
        "inception_seconds_per_image": None,
    }


def _inception_scores(images: torch.Tensor, ref_size: int, data_dir: str | None, kid_subsets: int, device,
                      verbose: bool) -> dict:
    """Inception FID / KID of the generated images and their floors (the values of `_inception_not_measured`'s keys)."""
    num_images = len(images)
    _log(verbose, f"Inception features of {num_images} generated images ...")
    start = time.perf_counter()
    gen_inc = inception_features(images, device=device, progress=verbose)
    seconds = time.perf_counter() - start
    per_image = seconds / num_images
    _log(verbose, f"  {seconds:.1f} s ({per_image:.3f} s per image); real statistics "
                  f"({ref_size} test, {num_images} train images) come from the cache when present")
    extract = lambda x: inception_features(x, device=device, progress=verbose)  # noqa: E731
    test_inc = real_features("test", ref_size, INCEPTION_NAME, extract, data_dir)
    train_inc = real_features("train", num_images, INCEPTION_NAME, extract, data_dir)
    kid = kernel_distance(gen_inc, test_inc["features"], kid_subsets)
    kid_floor = kernel_distance(train_inc["features"], test_inc["features"], kid_subsets)
    scores = {
        "inception_fid": fid_from_features(gen_inc, test_inc["features"]),
        "inception_fid_floor": fid_from_features(train_inc["features"], test_inc["features"]),
        "inception_kid": kid[0],
        "inception_kid_std": kid[1],
        "inception_kid_floor": kid_floor[0],
        "inception_seconds_per_image": round(per_image, 4),
    }
    _log(verbose, f"  Inception FID {scores['inception_fid']:.2f} (floor {scores['inception_fid_floor']:.2f})")
    return scores


def _first_per_class(samples, num_per_class: int, seed: int, settings: SamplingSettings, class_names: list[str]):
    """The first `num_per_class` images of every class of `samples` (label-major, every class, the seed rule), after
    checking that they are the images `generate(pipe, None, num_per_class, seed, settings=settings)` makes."""
    from dataclasses import replace

    from ..sampling import plan

    per_class = len(samples) // len(class_names)
    ids, seeds = plan(list(range(len(class_names))), per_class, seed)
    if samples.class_ids != ids or samples.seeds != seeds or samples.settings != settings or per_class < num_per_class:
        raise ValueError(f"samples must be generate(pipe, None, k, seed={seed}, settings={settings.describe()!r}) for some "
                         f"k >= num_per_class ({num_per_class}); got {len(samples)} images with other seeds or settings")
    keep = np.concatenate([np.arange(c * per_class, c * per_class + num_per_class) for c in range(len(class_names))])
    return replace(samples, images=samples.images[torch.from_numpy(keep)], class_ids=[ids[i] for i in keep],
                   seeds=[seeds[i] for i in keep], seconds=samples.seconds * num_per_class / per_class)


# ---------------------------------------------------------------------------------------------- reports
def _f(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def metrics_markdown(result: dict) -> str:
    """The metrics section (model card and metrics.md): command, N, settings, each metric beside its floor."""
    n = result["num_images"]
    lines = [
        f"Measured with `{result['command'] or 'pipeline.evaluate.evaluate(...)'}` on {result['date'][:10]}:",
        f"N = {n:,} generated images ({result['num_per_class']} per class), {SamplingSettings.from_json(result).describe()}"
        f"{', style ' + style_text(result['style']) if result.get('style') else ''}, "
        f"seed {result['seed']} (image j of class c: seed + 1e6 c + j), "
        f"{result['time_per_image_s']:.3f} s per image on {result['device']} ({result['hardware']}).",
        "",
        f"The floor is the same metric for N = {n:,} real Fashion-MNIST *training* images (class-balanced): what a "
        "perfect generator would score at this N. Distances are to the Fashion-MNIST test set.",
        "",
        f"| metric | generated (N = {n:,}) | floor: real train images (N = {n:,}) |",
        "|---|---|---|",
        f"| judge accuracy | {_f(result['judge_accuracy'], 4)} | {_f(result['judge_accuracy_floor'], 4)} |",
        f"| judge-FID (vs {result['judge_reference_test_images']:,} test images) | {_f(result['judge_fid'], 3)} "
        f"| {_f(result['judge_fid_floor'], 3)} |",
        f"| judge-KID ×10³ | {_f(result['judge_kid'] * 1e3, 3)} | {_f(result['judge_kid_floor'] * 1e3, 3)} |",
    ]
    if result["inception"]:
        lines += [
            f"| Inception FID (vs {result['inception_reference_test_images']:,} test images) "
            f"| {_f(result['inception_fid'])} | {_f(result['inception_fid_floor'])} |",
            f"| Inception KID ×10³ | {_f(result['inception_kid'] * 1e3)} ± {_f(result['inception_kid_std'] * 1e3)} "
            f"| {_f(result['inception_kid_floor'] * 1e3)} |",
        ]
    else:
        lines.append("| Inception FID | not measured (`--no-inception`) | – |")
    lines += ["", "| class | judge accuracy (generated) | judge accuracy (real train) |", "|---|---|---|"]
    for name, acc in result["judge_accuracy_per_class"].items():
        lines.append(f"| {name} | {acc:.3f} | {_f(result['judge_accuracy_floor_per_class'].get(name), 3)} |")
    judge = result["judge"]
    lines += [
        "",
        f"The judge is the project's own CNN classifier (`pipeline/weights/judge.safetensors`, "
        f"{_f(judge.get('test_accuracy'), 4) if judge.get('test_accuracy') is not None else 'unknown'} accuracy on "
        "the Fashion-MNIST test set). It was trained on the training images, so its accuracy on them (the floor "
        "column) is slightly optimistic. KID is unbiased and can be slightly negative for matching distributions.",
    ]
    if result.get("note"):  # what the run's record says about how it ran (e.g. a shared machine)
        lines += ["", result["note"]]
    return "\n".join(lines)


def write_report(result: dict, out_dir: str | Path, images: torch.Tensor | None = None) -> Path:
    """Writes metrics.json, metrics.md and (when `images` are given) samples.png (up to 8 per class) to `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", result)
    title = f"# Evaluation of {result['model'] or 'a fashion-ddpm pipeline'}\n\n"
    atomic_write_text(out / "metrics.md", title + metrics_markdown(result) + "\n")
    if images is not None:
        from ..images import to_pil

        k = result["num_per_class"]
        pil = to_pil(images)
        rows = [pil[c * k:c * k + min(k, 8)] for c in range(len(result["class_names"]))]
        grid = labelled_grid(rows, result["class_names"], title=SamplingSettings.from_json(result).describe())
        atomic_save_image(grid, out / "samples.png")
    return out
