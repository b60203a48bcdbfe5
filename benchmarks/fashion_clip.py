"""The Fashion-MNIST CLIP measured (pretrained/fashion-clip, scripts/train_clip.py), on data its training never saw:

  prompt accuracy   the 10,000 test images against "a photo of a {class}" for the ten classes (supervised: it was
                    trained on class captions), overall and per class, beside the project judge's test accuracy
  retrieval         image->text recall@1/@3 over the ten class prompts; text->image precision@100 and average
                    precision of each class prompt over the 10,000 test images
  quality AUC       the quality score (p_good + p_clear - p_blurry of the evaluation's prompts) of clean test images
                    against degraded copies of them: AUC = P(clean scores higher), per degradation and strength, for
                    the kinds it was NOT trained on (the measurement) and, marked, those it was (circular)
  generated images  on --model's images (--num-per-class per class, its default sampling): Spearman correlation of
                    the CLIP quality score with the judge's probability of the intended class

  python -m benchmarks.fashion_clip --out benchmarks/results        # ~3 min on 2 CPU threads
  python -m benchmarks.fashion_clip --smoke --clip-model DIR        # any CLIP folder, 200 test images
"""

from __future__ import annotations

from benchmarks.harness import RESULTS, emit, markdown_table, parser, repo_relative, torch_machine

NAME = "fashion_clip"
STRENGTHS = (0.25, 0.75)
RANK_K = 100


def parse_args(argv=None):
    p = parser(NAME, __doc__.split("\n\n")[0], model=True, clip_model=True, threads=True, seed=0, out=RESULTS,
               smoke="200 test images, 100 for the AUCs, 2 generated per class")
    p.add_argument("--num-per-class", type=int, default=50, help="generated images per class (default 50)")
    p.add_argument("--auc-images", type=int, default=2000, help="clean test images in each AUC (default 2000)")
    args = p.parse_args(argv)
    if args.smoke:
        args.num_per_class, args.auc_images = 2, 100
    if args.num_per_class < 1 or args.auc_images < 10:
        raise SystemExit(f"error: --num-per-class must be >= 1 and --auc-images >= 10, got {args.num_per_class}, {args.auc_images}")
    return args


def auc(positive, negative) -> float:
    """P(a positive scores higher than a negative), ties half (the Mann-Whitney U statistic over the pairs)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(positive, negative).statistic / (len(positive) * len(negative)))


def average_precision(relevant, scores) -> float:
    """Mean over the relevant items of the precision at their rank (scikit-learn's definition; not a dependency here)."""
    import numpy as np

    hits = np.asarray(relevant)[np.argsort(-np.asarray(scores), kind="stable")]
    if not hits.any():
        return float("nan")
    return float((np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)).mean())


def retrieval(zs_probs, labels, k: int = RANK_K) -> dict:
    import numpy as np

    ranks = (-zs_probs).argsort(1)
    out = {"image_to_text_recall_at_1": float((ranks[:, 0] == labels).mean()),
           "image_to_text_recall_at_3": float((ranks[:, :3] == labels[:, None]).any(1).mean())}
    k = min(k, len(labels))
    precision, ap = [], []
    for c in range(zs_probs.shape[1]):
        top = (-zs_probs[:, c]).argsort()[:k]
        precision.append(float((labels[top] == c).mean()))
        ap.append(average_precision(labels == c, zs_probs[:, c]))
    out.update({f"text_to_image_precision_at_{k}": float(np.mean(precision)), "text_to_image_mean_average_precision":
                float(np.nanmean(ap)), "text_to_image_precision_per_class": precision, "text_to_image_ap_per_class": ap})
    return out


def main(argv=None):
    args = parse_args(argv)
    machine = torch_machine(args.threads)
    import json
    from pathlib import Path

    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from pipeline.data import load_dataset
    from pipeline.evaluation.clip import load_clip, per_class_table, ranked_grid
    from pipeline.evaluation.judge import JUDGE_WEIGHTS, FashionJudge
    from pipeline.models import load_pipeline
    from pipeline.sampling import generate
    from pipeline.training.clip import HELD_OUT_DEGRADATIONS, TRAIN_DEGRADATIONS, degrade

    scorer = load_clip(args.clip_model)
    test = load_dataset(None, None, "test")
    n = 200 if args.smoke else len(test)
    images, labels = test.images[:n].float()[:, None] / 255, test.labels[:n].numpy()
    names = test.class_names
    scores = scorer.score(images, labels, names)
    correct = scores.zero_shot_probs.argmax(1) == labels
    judge_info = json.loads(JUDGE_WEIGHTS.with_suffix(".json").read_text())
    prompt = {"prompt_accuracy": float(correct.mean()),
              "prompt_accuracy_per_class": {c: float(correct[labels == i].mean()) for i, c in enumerate(names) if (labels == i).any()},
              "judge_test_accuracy": judge_info["test_accuracy"], "judge_per_class_test_accuracy": judge_info["per_class_test_accuracy"],
              "test_images": n}

    g = torch.Generator().manual_seed(args.seed)
    clean = images[:args.auc_images]
    clean_quality = scores.quality[:args.auc_images]
    rows = []
    for kind in (*HELD_OUT_DEGRADATIONS, *TRAIN_DEGRADATIONS):
        for strength in STRENGTHS:
            degraded = degrade(clean, kind, torch.full((len(clean),), strength), g)
            q = scorer.score(degraded, labels[:args.auc_images], names).quality
            rows.append({"degradation": kind, "strength": strength, "seen_in_training": kind in TRAIN_DEGRADATIONS,
                         "auc": auc(clean_quality, q), "quality_clean": float(clean_quality.mean()), "quality_degraded": float(q.mean())})

    pipe = load_pipeline(args.model)
    samples = generate(pipe, None, args.num_per_class, seed=args.seed)
    generated = scorer.score(samples.images, samples.class_ids, pipe.class_names)
    judge = FashionJudge.load()
    with torch.no_grad():
        judge_probs = judge(samples.images).softmax(1).numpy()
    ids = np.asarray(samples.class_ids)
    confidence = judge_probs[np.arange(len(ids)), ids]
    rho = spearmanr(generated.quality, confidence).statistic
    per_class_rho = {pipe.class_names[c]: float(spearmanr(generated.quality[ids == c], confidence[ids == c]).statistic)
                     for c in sorted(set(ids)) if (ids == c).sum() > 2}
    judge_correct = judge_probs.argmax(1) == ids
    real_table, generated_table = per_class_table(scores), per_class_table(generated)
    section = [{"class": row["class_name"], "quality_generated": row["quality_mean"], "quality_generated_std": row["quality_std"],
                "quality_real": real["quality_mean"], "clip_agreement_generated": row["zero_shot_agreement"],
                "clip_agreement_real": real["zero_shot_agreement"],
                "judge_accuracy_generated": float(judge_correct[ids == row["class_id"]].mean())}
               for row, real in zip(generated_table["classes"], real_table["classes"]) if row["n"]]
    if args.out and not args.smoke:  # the best and worst generated images by CLIP quality, the report's grids
        for lowest, name in ((False, "fashion_clip_best.png"), (True, "fashion_clip_worst.png")):
            ranked_grid(generated, 4, lowest=lowest).save(Path(args.out) / name)
    gen = {"model": repo_relative(str(args.model or "pretrained/fashion-ddpm-gpu")), "settings": samples.settings.label(),
           "num_images": len(ids), "spearman_quality_vs_judge_confidence": float(rho),
           "spearman_per_class": per_class_rho, "judge_accuracy": float((judge_probs.argmax(1) == ids).mean()),
           "clip_prompt_agreement": float((generated.zero_shot_probs.argmax(1) == ids).mean()),
           "quality_mean": float(generated.quality.mean())}
    record = Path(scorer.name) / "training.json"  # written by scripts/train_clip.py
    training = json.loads(record.read_text()) if record.is_file() else None
    result = {"clip_model": repo_relative(scorer.name), "smoke": args.smoke, "machine": machine, "seed": args.seed,
              "prompts": {"zero_shot": scorer.zero_shot_template, "quality": list(scorer.templates)},
              **prompt, **retrieval(scores.zero_shot_probs, labels), "quality_auc": rows, "generated": gen,
              "per_class_quality": section,
              "training": None if training is None else {k: v for k, v in training.items() if k != "log"}}
    emit(NAME, result, to_markdown(result), args)
    return result


def to_markdown(r: dict) -> str:
    held = [x for x in r["quality_auc"] if not x["seen_in_training"]]
    seen = [x for x in r["quality_auc"] if x["seen_in_training"]]

    def auc_rows(rows):
        return [[x["degradation"], f"{x['strength']:g}", f"{x['auc']:.3f}", f"{x['quality_clean']:.3f}", f"{x['quality_degraded']:.3f}"]
                for x in rows]

    header = ["degradation", "strength", "AUC (clean > degraded)", "quality, clean", "quality, degraded"]
    per_class = [[c, f"{a:.3f}", f"{r['judge_per_class_test_accuracy'][c]:.3f}"] for c, a in r["prompt_accuracy_per_class"].items()]
    g = r["generated"]
    k = next(key for key in r if key.startswith("text_to_image_precision_at_") and not key.endswith("class"))
    quality = [[x["class"], f"{x['quality_generated']:.3f} ± {x['quality_generated_std']:.3f}", f"{x['quality_real']:.3f}",
                f"{x['clip_agreement_generated']:.2f} / {x['clip_agreement_real']:.2f}", f"{x['judge_accuracy_generated']:.2f}"]
               for x in r["per_class_quality"]]
    return "\n\n".join([
        f"# {NAME}: `{r['clip_model']}`{' (smoke run: not a measurement)' if r['smoke'] else ''}",
        f"Prompt accuracy on {r['test_images']} test images with \"{r['prompts']['zero_shot']}\": "
        f"**{r['prompt_accuracy']:.3f}** (the project judge: {r['judge_test_accuracy']:.3f}).",
        markdown_table(["class", "CLIP prompt accuracy", "judge test accuracy"], per_class),
        f"Retrieval: image->text recall@1 {r['image_to_text_recall_at_1']:.3f}, recall@3 {r['image_to_text_recall_at_3']:.3f}; "
        f"text->image {k.replace('text_to_image_', '').replace('_', ' ')} {r[k]:.3f}, mean average precision "
        f"{r['text_to_image_mean_average_precision']:.3f}.",
        "Quality score on degradations it was never trained on:", markdown_table(header, auc_rows(held)),
        "On the degradations it was trained on (captioned \"blurry\": circular, for reference):", markdown_table(header, auc_rows(seen)),
        f"On {g['num_images']} images of `{g['model']}` ({g['settings']}): Spearman ρ of CLIP quality with the judge's "
        f"probability of the intended class {g['spearman_quality_vs_judge_confidence']:.3f}; judge accuracy "
        f"{g['judge_accuracy']:.3f}, CLIP prompt agreement {g['clip_prompt_agreement']:.3f}.",
        "Per class (quality = p_good + p_clear − p_blurry over the three quality prompts; the real test images are the "
        "floor):",
        markdown_table(["class", "CLIP quality, generated", "CLIP quality, real test", "CLIP agreement generated / real",
                        "judge accuracy, generated"], quality),
    ])


if __name__ == "__main__":
    main()
