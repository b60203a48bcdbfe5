"""The model card (the exported folder's README.md): Hub metadata through huggingface_hub's `ModelCard` /
`ModelCardData` (with `eval_results`, so the Hub shows the measured metrics), text from a Jinja template."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..formatting import duration, weights_parameters
from ..io import atomic_write_text
from ..settings import SamplingSettings

TEMPLATE = Path(__file__).with_name("model_card_template.md")
# The Hub has no task for class-conditional generation (diffusers' own DiT checkpoints carry none): the card sets no
# pipeline_tag, and its evaluation results use the nearest Hub task id so that the Hub can list them.
EVAL_TASK = ("unconditional-image-generation", "Class-conditional image generation")
HUB_ID_PLACEHOLDER = "USER/NAME"
TITLE = "fashion-ddpm: class-conditional diffusion model for Fashion-MNIST"


def _section(name: str) -> re.Pattern:
    """The fillable block `<!-- name:start --> ... <!-- name:end -->` of a model card."""
    return re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)


def _block(name: str, markdown: str) -> str:
    return f"<!-- {name}:start -->\n{markdown.strip()}\n<!-- {name}:end -->"


METRICS = _section("metrics")
USE = _section("use")
TAGS = ["diffusers", "fashion-mnist", "class-conditional", "classifier-free-guidance", "image-generation"]


def use_markdown(hub_id: str | None = None, local_path: str | None = None, style_attributes: list[str] | None = None,
                 step_counts: list[int] | None = None) -> str:
    """The card's first block: that the pipeline's own code runs with `trust_remote_code=True` and how to pin it, that
    it takes classes and not a prompt, and the lines that load `hub_id` (USER/NAME until a repo is known) and call it."""
    two = bool(style_attributes or step_counts)  # a condition encoder: its code file too
    code = "`pipeline_fashion_ddpm.py`" + (" and `condition_encoder/condition_encoder.py`" if two else "")
    lines = [f'pipe = DiffusionPipeline.from_pretrained("{hub_id or HUB_ID_PLACEHOLDER}", trust_remote_code=True)',
             'images = pipe(class_labels=["Sneaker", "Bag"], num_images_per_label=4).images   # the saved defaults']
    if style_attributes:
        lines += ['images = pipe(class_labels="Dress", style={"' + style_attributes[0] + '": 0.9}).images   '
                  '# percentiles within the class', 'images = pipe(class_labels="Dress", style="wide dark").images      '
                  '# descriptor words']
    if step_counts:
        lines.append(f'images = pipe(class_labels="Bag", num_inference_steps={min(step_counts)}).images   # '
                     f'{" / ".join(map(str, sorted(step_counts)))} U-Net passes per image')
    local = (f"\n\nFrom a fashion-ddpm checkout: `DiffusionPipeline.from_pretrained(\"{local_path}\", "
             "trust_remote_code=True)`." if local_path else "")
    return (f"This model is a diffusers pipeline with code of its own: {code} in this repository "
            f"{'run' if two else 'runs'} when it loads with `trust_remote_code=True`. Read {'them' if two else 'it'} "
            "first, and pin the commit you read with `revision=\"<commit sha>\"` "
            "(a later push cannot then change the code you run). It takes class labels"
            f"{' and a style' if style_attributes else ''}, not a text prompt: the Hub's generic "
            "`pipe(prompt)` snippet does not apply.\n\n```python\nfrom diffusers import DiffusionPipeline\n\n"
            + "\n".join(lines) + f"\n```{local}")


def set_use_section(text: str, folder: str | Path, hub_id: str | None = None, local_path: str | None = None) -> str:
    """`text` (a card) with its use block rendered for `hub_id` from what `folder` holds (style attributes, a student's
    step counts); a card written before the block existed gets it under its title."""
    import json

    folder = Path(folder)
    encoder = folder / "condition_encoder" / "config.json"
    config = json.loads(encoder.read_text(encoding="utf-8")) if encoder.is_file() else {}
    steps = sorted(int(n) for n in (config.get("step_schedules") or {}))
    block = _block("use", use_markdown(hub_id, local_path, config.get("style_attributes"), steps))
    if USE.search(text):
        return USE.sub(lambda _: block, text)
    text = re.sub(r"^## Use\n.*?(?=^## )", "", text, flags=re.M | re.S)  # the usage section of older cards
    title = re.search(r"^# .*$", text, re.M)
    at = title.end() if title else 0
    return text[:at] + "\n\n" + block + text[at:]


def card_data(prediction_type: str):
    from huggingface_hub import ModelCardData

    tags = TAGS + ["v-prediction" if prediction_type == "v_prediction" else "epsilon-prediction"]
    # No pipeline_tag: the Hub has none for class-conditional generation, and "unconditional-image-generation" is false.
    return ModelCardData(library_name="diffusers", license="mit", datasets=["zalando-datasets/fashion_mnist"], tags=tags)


def write_model_card(folder: str | Path, config: dict, stats: dict, sample_grid: str, loss_curve: str,
                     settings: SamplingSettings, hub_model_id: str | None = None, local_path: str | None = None) -> Path:
    """Writes `folder/README.md` from the template. The usage example loads `hub_model_id` (else a USER/NAME
    placeholder) from the Hub and `local_path` (else `folder`) from a checkout.

    `stats`: steps, images_seen, epochs, wall_time_s, final_loss, hardware, data_source, num_train_images,
    parameters, images_per_step. `settings`: the model's saved sampling defaults.
    """
    from huggingface_hub import ModelCard

    from ..pipeline_fashion_ddpm import FASHION_MNIST_CLASSES

    loss = stats.get("final_loss")
    target = "the velocity v" if config.get("prediction_type") == "v_prediction" else "the noise ε"
    card = ModelCard.from_template(
        card_data(config.get("prediction_type", "epsilon")), template_path=str(TEMPLATE), title=TITLE, student=None,
        description=config.get("description") or "Trained with `train_conditional.py` from fashion-ddpm.",
        use=_block("use", use_markdown(hub_model_id, local_path or Path(folder).as_posix(), config.get("style_attributes"))),
        target=target,
        num_train_timesteps=config.get("num_train_timesteps", 100), parameters=f"{stats.get('parameters', 0) / 1e6:.2f} M",
        settings=settings.describe(), class_names=", ".join(FASHION_MNIST_CLASSES), sample_grid=sample_grid,
        loss_curve=loss_curve, data_source=stats["data_source"], num_train_images=f"{stats['num_train_images']:,}",
        steps_trained=f"{stats['steps']:,}", batch=f"{stats.get('images_per_step', 0):,}",
        images_seen=f"{stats['images_seen']:,}", epochs=stats["epochs"], wall_time=duration(stats["wall_time_s"]),
        hardware=stats["hardware"], final_loss="n/a" if loss is None else f"{loss:.4f}",
        config_yaml=yaml.safe_dump(config, sort_keys=False).strip(),
        style_attributes=", ".join(f"`{a}`" for a in config.get("style_attributes") or []),
        init_from=config.get("init_from"), clip_loss=clip_loss_text(config),
        style_guidance=None if settings.style_guidance is None else f"{settings.style_guidance:g}",
        guide=None if settings.guide is None else f"{settings.guide:g}",
        guide_parameters=f"{stats['guide_parameters'] / 1e6:.2f} M" if stats.get("guide_parameters") else None,
    )
    path = Path(folder) / "README.md"
    atomic_write_text(path, str(card))
    return path


def write_student_card(folder: str | Path, local_path: str | None = None) -> Path:
    """A distilled student's `folder/README.md` from the same template as every card, from what the folder holds
    (distill.json: the run's config and cost; its encoder's schedules and w range; its saved sampling defaults)."""
    import json

    from huggingface_hub import ModelCard

    folder = Path(folder)
    record = json.loads((folder / "distill.json").read_text(encoding="utf-8"))
    config, stats = record["config"], record["stats"]
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    encoder = json.loads((folder / "condition_encoder" / "config.json").read_text(encoding="utf-8"))
    schedules = sorted((int(n), ts) for n, ts in encoder["step_schedules"].items())
    timesteps = index.get("default_timesteps") or dict(schedules)[index["default_num_inference_steps"]]
    settings = SamplingSettings.from_json({"sampler": "ddim", "steps": len(timesteps), "timesteps": timesteps,
                                           "guidance": index["default_guidance_scale"],
                                           "guidance_interval": index.get("default_guidance_interval")})
    stages = [f"{st['updates']:,} updates at learning rate {st['learning_rate']:g}"
              + (f" on {st['trajectories']:,} trajectories" if "trajectories" in st else "")
              + (f" from {st['init_student']!r}" if st["init_student"] else " from the teacher")
              + (f", step counts drawn with weights {st['step_weights']}" if st.get("step_weights") else "")
              + f", {duration(st['wall_time_s'])}, final loss {st['final_loss']:.4f}" for st in stats.get("stages", [])]
    low, high = encoder["guidance_range"]
    student = {"method": config["method"], "teacher": config["teacher"], "updates": f"{stats['updates']:,}",
               "batch": config["train_batch_size"], "trajectories": f"{stats['trajectories']:,}",
               "grid_steps": config["grid_steps"], "guidance_values": config["guidance_values"],
               "trajectory_time": duration(stats["trajectory_time_s"]), "w_low": f"{low:g}", "w_high": f"{high:g}",
               "schedules": "; ".join(f"{n} step{'s' * (n > 1)} at t = {', '.join(map(str, ts))}" for n, ts in schedules),
               "stages": stages}
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    card = ModelCard.from_template(
        card_data(scheduler.get("prediction_type", "epsilon")), template_path=str(TEMPLATE),
        title=f"A few-step student of {config['teacher']}", student=student, settings=settings.describe(),
        use=_block("use", use_markdown(local_path=local_path, step_counts=[n for n, _ in schedules])),
        wall_time=duration(stats["wall_time_s"]), hardware=stats["hardware"], final_loss=f"{stats['final_loss']:.4f}",
        sample_grid="samples/final.png", loss_curve="samples/loss_curve.png", style_attributes=None)
    path = folder / "README.md"
    atomic_write_text(path, str(card))
    return path


def clip_loss_text(config: dict) -> str | None:
    """The CLIP-guided loss of a run's config in one line (None when it had none)."""
    weight = config.get("clip_loss_weight") or 0
    if not weight:
        return None
    negative = config.get("clip_negative_prompt")
    term = f"1 − cos(CLIP(x̂0), “{config['clip_prompt']}”)" + (f" + cos(CLIP(x̂0), “{negative}”)" if negative else "")
    return (f"λ = {weight:g} × ({term}) on `{config.get('clip_model') or 'pretrained/fashion-clip'}`, for t/T ≤ "
            f"{config['clip_max_noise']:g}, each image weighted by ᾱ_t (pipeline/training/clip_loss.py)")


def rewrite_model_card(folder: str | Path, local_path: str, hub_model_id: str | None = None) -> Path:
    """Renders a saved model's card again from the current template and what the folder holds (train_config.json,
    metrics.jsonl, the U-Net's weights and the saved sampling defaults), keeping its filled sections and the data and
    hardware its training card named. For cards written before the template changed; nothing is re-measured."""
    import json

    from ..settings import SamplingSettings

    folder = Path(folder)
    old = (folder / "README.md").read_text(encoding="utf-8")
    config = json.loads((folder / "train_config.json").read_text())
    last = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()][-1]

    def row(name: str) -> str:
        found = re.search(rf"^\| {re.escape(name)} \| (.*) \|$", old, re.M)
        if found is None:
            raise ValueError(f"{folder / 'README.md'} has no '| {name} |' row to keep")
        return found.group(1)

    data, images = re.fullmatch(r"(.*) \(([\d,]+) images\)", row("data")).groups()
    index = json.loads((folder / "model_index.json").read_text())
    settings = SamplingSettings(config["sample_sampler"], index["default_num_inference_steps"], index["default_guidance_scale"],
                                index.get("default_guidance_interval"),
                                style_guidance=index.get("default_style_guidance_scale"),
                                guide=index.get("default_guide_scale"))
    guide_weights = folder / "guide_unet" / "diffusion_pytorch_model.safetensors"
    batch = config["train_batch_size"] * config["gradient_accumulation_steps"]
    stats = {"steps": last["step"], "images_seen": last["step"] * batch, "wall_time_s": last["wall_time_s"],
             "final_loss": last["loss"], "hardware": row("hardware"), "data_source": data,
             "num_train_images": int(images.replace(",", "")), "epochs": round(last["epoch"], 2), "images_per_step": batch,
             "parameters": weights_parameters(folder / "unet" / "diffusion_pytorch_model.safetensors"),
             "guide_parameters": weights_parameters(guide_weights) if guide_weights.is_file() else None}
    path = write_model_card(folder, config, stats, "samples/final.png", "samples/loss_curve.png", settings, hub_model_id,
                            local_path)
    text = path.read_text(encoding="utf-8")
    for name in ("metrics", "synthetic", "style"):  # measured sections carried over as they were
        kept = _section(name).search(old)
        if kept:
            text = _section(name).sub(lambda _, kept=kept: kept.group(0), text)
    atomic_write_text(path, text)
    return path


# (metric type, name): the judge's numbers are typed as what they are, not as the standard FID / accuracy
EVAL_METRICS = (("judge-accuracy", "judge accuracy", "judge_accuracy"), ("judge-fid", "judge-FID", "judge_fid"),
                ("fid", "Inception FID", "inception_fid"))


def eval_results(result: dict) -> list:
    """The measured metrics of `pipeline.evaluation.fidelity.evaluate` as Hub `EvalResult`s: the metric's plain name,
    and in its `args` how it was measured (N, the sampling settings, the seed) and the real-data floor at that N."""
    from huggingface_hub import EvalResult

    settings = SamplingSettings.from_json(result)
    common = {"num_images": result["num_images"], **settings.to_json(), "seed": result.get("seed", 0)}
    return [EvalResult(task_type=EVAL_TASK[0], task_name=EVAL_TASK[1], dataset_type="zalando-datasets/fashion_mnist",
                       dataset_name="Fashion-MNIST", dataset_split="test", metric_type=kind, metric_name=name,
                       metric_value=round(float(result[key]), 4),
                       metric_args={**common, "real_data_floor": round(float(result[key + "_floor"]), 4)})
            for kind, name, key in EVAL_METRICS if result.get(key) is not None]


def fill_section(card_path: str | Path, name: str, title: str, markdown: str) -> Path:
    """Writes `markdown` between `<!-- name:start -->` and `<!-- name:end -->` of a written model card; a card without
    that section (written before it existed) gets it, under `## title`, before "## Limitations" (else at the end)."""
    from huggingface_hub import ModelCard

    card_path = Path(card_path)
    card = ModelCard.load(card_path)
    block, pattern = _block(name, markdown), _section(name)
    if pattern.search(card.text):
        card.text = pattern.sub(lambda _: block, card.text)
    else:
        section = f"## {title}\n\n{block}\n\n"
        at = card.text.find("## Limitations")
        card.text = card.text[:at] + section + card.text[at:] if at >= 0 else card.text.rstrip() + "\n\n" + section
    atomic_write_text(card_path, str(card))
    return card_path


def fill_metrics(card_path: str | Path, markdown: str, result: dict | None = None) -> Path:
    """Replaces the metrics section of a written model card with `markdown` and, with `result`, its eval_results
    (under the model folder's name: each model its own `model-index` entry)."""
    from huggingface_hub import ModelCard

    card_path = Path(card_path)
    card = ModelCard.load(card_path)
    if not METRICS.search(card.text):
        raise ValueError(f"{card_path} has no <!-- metrics:start --> ... <!-- metrics:end --> section to fill")
    card.text = METRICS.sub(lambda _: _block("metrics", markdown), card.text)
    if result is not None:
        card.data.eval_results = eval_results(result)
        card.data.model_name = card_path.resolve().parent.name
    atomic_write_text(card_path, str(card))
    return card_path
