"""The published pages' tables, each rendered from its result file: what `python -m benchmarks.report` puts between the
prose of its templates (benchmarks/templates/). A benchmark whose own Markdown is published renders it itself
(`body(name)`: its module's `to_markdown`); the rest, and the shipped models' tables, are here. A function that returns
a fact rather than a table (e.g. `chosen_label`, `ema_facts`) gives the template the numbers its prose states.

Every table is followed, on the page, by `provenance(name)`: the file it came from, how it was made and on what.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

from pipeline.formatting import duration, weights_parameters

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
# (folder, its evaluation, its CAS result or None): the shipped models, the default first
SHIPPED = [("pretrained/fashion-ddpm-gpu", "evaluate_gpu_default", "synthetic_data_gpu"),
           ("pretrained/fashion-ddpm-cpu", "evaluate_default", "synthetic_data"),
           ("pretrained/fashion-ddpm-style", "evaluate_style", None)]
FAST = ("pretrained/fashion-ddpm-cpu-fast", "evaluate_fast")  # the distilled student and its evaluation
STYLE_TARGETS = {"spearman": 0.8, "mae": 0.12, "leakage": 0.1, "within": 1.10}  # issue-set bars the style model is held to


# ---------------------------------------------------------------------------------------------- reading
def result_path(name: str) -> Path:
    """benchmarks/results/NAME.json, or NAME/metrics.json for an evaluation's folder."""
    path = RESULTS / f"{name}.json"
    return path if path.is_file() else RESULTS / name / "metrics.json"


def load(name: str) -> dict:
    return json.loads(result_path(name).read_text())


def measured(name: str) -> bool:
    """Whether the result NAME exists (sections of results not measured yet are left out)."""
    return result_path(name).is_file()


def source_path(name: str) -> str:
    return result_path(name).relative_to(REPO).as_posix()


def settings_of(row: dict):
    from pipeline.settings import SamplingSettings

    return SamplingSettings.from_json(row)


def rows_of(name: str, model: str | None = None) -> list[dict]:
    return [r for r in load(name)["rows"] if model is None or r["model"] == model]


# ---------------------------------------------------------------------------------------------- formatting
def num(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def beside(value, floor, digits: int = 3, ratio: bool = True) -> str:
    """'0.522 (floor 0.298, 1.75×)': a metric beside its real-data floor."""
    if value is None:
        return "–"
    text = f"{value:.{digits}f} (floor {floor:.{digits}f}"
    return text + (f", {value / floor:.2f}×)" if ratio and floor > 0 else ")")


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def hardware(result: dict) -> str:
    m = result.get("machine") or {}
    device = m.get("device")
    if device and device != "cpu":
        return device
    cpu = m.get("cpu_model") or result.get("hardware", "CPU")
    threads = m.get("torch_threads")
    load_average = m.get("load_average_1m_at_start")
    return f"{cpu}" + (f", {threads} torch thread(s)" if threads else "") + (
        f", load {load_average} at start" if load_average is not None else "")


def provenance(name: str) -> str:
    """Where a table's numbers come from and how to make them again."""
    r = load(name)
    where = f"`{source_path(name)}`"
    date = ((r.get("machine") or {}).get("date") or r.get("date") or "")[:10]
    made = f"measured {date} on {hardware(r)}" if date else f"measured on {hardware(r)}"
    if r.get("partial"):
        made += f" (a partial run: {len(r['rows'])} rows were measured before it stopped)"
    if r.get("not_reproducible"):
        return f"From {where}, {made}; made by `{r['command']}` — not re-runnable from a clone: {r['not_reproducible']}."
    return f"From {where}, {made}. Reproduce: `{r.get('reproduce') or r['command']}`"


def benchmark(module: str):
    """The benchmark module `benchmarks.MODULE`, for a table it renders itself."""
    return importlib.import_module(f"benchmarks.{module}")


def body(name: str) -> str:
    """A benchmark's own Markdown for its result (its module's `to_markdown`), without its title line."""
    return benchmark(name).to_markdown(load(name)).split("\n\n", 1)[1]


def sourced(name: str) -> str:
    """`body(name)` with its source file named after each of its tables."""
    blocks = body(name).split("\n\n")
    return "\n\n".join(b + (f"\n\nFrom `{source_path(name)}`." if b.startswith("|") else "") for b in blocks)


def metrics_cells(r: dict, inception_digits: int = 2) -> list[str]:
    """Judge accuracy (floor), judge-FID (floor) and Inception FID (floor) of an evaluation."""
    return [f"{r['judge_accuracy']:.3f} ({r['judge_accuracy_floor']:.3f})", beside(r["judge_fid"], r["judge_fid_floor"]),
            beside(r["inception_fid"], r["inception_fid_floor"], inception_digits)]


# ---------------------------------------------------------------------------------------------- sampling quality
def guided_text(s) -> str:
    """Where classifier-free guidance acts (and the autoguidance weight, when a guide is on)."""
    guide = f"; guide a = {s.guide:g}" if s.guide else ""
    if not s.guided:
        return ("none" if s.guidance == 1 else "unconditional") + guide
    return ("every step" if s.every_step else f"t/T in [{s.interval[0]:g}, {s.interval[1]:g}]") + (
        f", rescale {s.rescale:g}" if s.rescale else "") + guide


def quality_rows(rows: list[dict], inception: bool, speed: str | None = "s / image", chosen: str | None = None,
                 base: bool = False, models: bool = False) -> str:
    """A quality_vs_steps-style table: each setting's metrics beside their floors (and against the first row; with
    `models`, each row's model first)."""
    header = (["model"] if models else []) + ["sampler:steps", "w", "guided"] + ([speed] if speed else [])
    header += ["judge acc. (floor)", "judge-FID (floor)"]
    header += ["Inception FID (floor)"] if inception else []
    header += ["judge-FID / first row"] + (["Inception FID / first row"] if inception else []) if base else []
    out = []
    first = rows[0]
    for r in rows:
        s = settings_of(r)
        model = r["model"] if s.guide else r["model"].split(" (guide ")[0]  # a guide attached at a = 0 is not used
        cells = ([f"`{model}`"] if models else []) + [f"{s.sampler}:{s.steps}", f"{s.guidance:g}", guided_text(s)]
        if speed:
            seconds = r["time_per_image_s"]
            cells.append("–" if seconds is None else num(seconds * 1000, 1) if speed == "ms / image" else num(seconds, 3))
        cells += [f"{r['judge_accuracy']:.3f} ({r['judge_accuracy_floor']:.3f})", beside(r["judge_fid"], r["judge_fid_floor"], 2)]
        cells += [beside(r["inception_fid"], r["inception_fid_floor"], 2)] if inception else []
        if base:
            cells += [f"{r['judge_fid'] / first['judge_fid']:.2f}×"]
            cells += [f"{r['inception_fid'] / first['inception_fid']:.2f}×" if r.get("inception_fid") else "–"] if inception else []
        if chosen is not None and s.label() == chosen:
            cells = [f"**{c}**" for c in cells]
        out.append(cells)
    return table(header, out)


def timed_samplers() -> tuple[list[dict], dict]:
    """quality_vs_steps' rows with sampler_timing's seconds per image where it timed that sampler (w = 2 at every step,
    like every quality row), and {setting label: its speed-up over DDPM-100}."""
    timing = {r["setting"]: r for r in load("sampler_timing")["rows"]}
    rows, speedups = rows_of("quality_vs_steps"), {}
    for r in rows:
        t = timing.get(f"{r['sampler']}:{r['steps']}")
        r["time_per_image_s"] = t["seconds_per_image"] if t else None
        if t:
            speedups[settings_of(r).label()] = t["speedup_vs_ddpm100"]
    return rows, speedups


def fastest_within(rows: list[dict], speedups: dict, min_speedup: float = 5.0, within: float = 1.10) -> str | None:
    """The fastest setting at >= min_speedup x the first row's speed whose judge-FID and Inception FID are within
    10 % of the first row's (speed-ups from a timing run of all samplers together)."""
    base = rows[0]
    ok = [r for r in rows[1:] if speedups.get(settings_of(r).label(), 0) >= min_speedup
          and r["judge_fid"] <= within * base["judge_fid"] and r["inception_fid"] <= within * base["inception_fid"]]
    best = max(ok, key=lambda r: speedups[settings_of(r).label()], default=None)
    return None if best is None else settings_of(best).label()


def chosen_label(rows: list[dict]) -> str | None:
    """The setting `pipeline.training.recipe.choose_guidance` picks from a guidance sweep's rows."""
    from pipeline.training.recipe import choose_guidance

    first = settings_of(rows[-1])
    candidates = [{**r, "guidance_scale": r.get("guidance_scale", r.get("guidance"))} for r in rows]
    best = choose_guidance(candidates, first.sampler, first.steps)
    return None if best is None else settings_of(best).label()


# ---------------------------------------------------------------------------------------------- the shipped models
def training_summary(folder: str) -> dict:
    f = REPO / folder
    config = json.loads((f / "train_config.json").read_text())
    last = [json.loads(line) for line in (f / "metrics.jsonl").read_text().splitlines() if line.strip()][-1]
    card = (f / "README.md").read_text(encoding="utf-8")
    device = re.search(r"^\| hardware \| (.*) \|$", card, re.M).group(1)
    unet = json.loads((f / "unet" / "config.json").read_text())
    return {"config": config, "updates": last["step"], "epochs": last["epoch"], "wall": duration(last["wall_time_s"]),
            "hardware": device, "channels": tuple(unet["block_out_channels"]),
            "parameters": weights_parameters(f / "unet" / "diffusion_pytorch_model.safetensors")}


def models_table() -> str:
    rows = []
    summaries = [training_summary(folder) for folder, *_ in SHIPPED]
    for (folder, evaluation, _), t in zip(SHIPPED, summaries):
        r, default = load(evaluation), summaries[0]["parameters"]
        role = ("the default" if t is summaries[0] else f"style, fine-tuned from `{t['config']['init_from']}`"
                if t["config"].get("style_attributes") else f"{default / t['parameters']:.1f}× fewer parameters")
        rows.append([f"`{folder}` ({role})", f"U-Net {t['channels']}, {t['parameters'] / 1e6:.1f} M parameters",
                     f"{t['updates']:,} updates × {t['config']['train_batch_size']} = {t['epochs']:.1f} epochs, {t['wall']} on "
                     f"{t['hardware']}", settings_of(r).describe(), *metrics_cells(r)])
    fast = fast_row()
    return table(["model", "network", "training", "default sampling", "judge accuracy (floor)", "judge-FID (floor)",
                  "Inception FID (floor)"], rows + ([fast] if fast else []))


def fast_shipped() -> bool:
    folder, evaluation = FAST
    return (REPO / folder / "distill.json").is_file() and (RESULTS / evaluation / "metrics.json").is_file()


def fast_row() -> list | None:
    """The models table's row of the distilled student, when it is shipped and evaluated."""
    if not fast_shipped():
        return None
    folder, evaluation = FAST
    d = json.loads((REPO / folder / "distill.json").read_text())
    stats, config, r = d["stats"], d["config"], load(evaluation)
    unet = json.loads((REPO / folder / "unet" / "config.json").read_text())
    s = settings_of(r)
    stages = f" in {len(stats['stages'])} stages" if len(stats.get("stages", [])) > 1 else ""
    return [f"`{folder}` (distilled from `{config['teacher']}`, {s.steps} U-Net passes per image)",
            f"U-Net {tuple(unet['block_out_channels'])} + condition encoder, {stats['parameters'] / 1e6:.1f} M parameters",
            f"{stats['trajectories']:,} teacher trajectories, then {stats['updates']:,} updates × "
            f"{config['train_batch_size']} pairs{stages}, {duration(stats['trajectory_time_s'] + stats['wall_time_s'])} on "
            f"{stats['hardware']}", s.describe(), *metrics_cells(r)]


def per_class_table() -> str:
    results = [load(evaluation) for _, evaluation, _ in SHIPPED]
    names = results[0]["class_names"]
    header = ["class", "real training images"] + [f"`{Path(folder).name}`" for folder, *_ in SHIPPED]
    rows = [[n, f"{results[0]['judge_accuracy_floor_per_class'][n]:.2f}"] + [f"{r['judge_accuracy_per_class'][n]:.2f}" for r in results]
            for n in names]
    return table(header, rows)


def shipped_evaluations() -> str:
    """The provenance of every shipped model's evaluation, in one paragraph."""
    return " ".join(provenance(evaluation) for _, evaluation, _ in SHIPPED)


def shipped_sources() -> str:
    return ", ".join(f"`{source_path(evaluation)}`" for _, evaluation, _ in SHIPPED)


# ---------------------------------------------------------------------------------------------- style
def style_control_table(name: str = "style_control") -> str:
    """Per attribute of a `benchmarks.style_control` result: ρ, MAE, leakage against the targets."""
    r, t = load(name), STYLE_TARGETS
    rows = []
    for row in r["rows"]:
        leak = row["leakage_mean_abs"]
        worst = max(leak, key=leak.get) if leak else None
        met = row["spearman"] >= t["spearman"] and row["mae"] <= t["mae"] and row["max_leakage"] <= t["leakage"]
        misses = [c["class"] for c in row["per_class"] if not c["excluded"] and not c["spearman"] >= t["spearman"]]
        rows.append([row["attribute"], f"{row['spearman']:.2f}", f"{row['mae']:.3f}",
                     f"{row['max_leakage']:.3f} ({worst})" if worst else "–", "yes" if met else "**no**",
                     ", ".join(misses) or "none", ", ".join(row["excluded_classes"]) or "none"])
    return table(["attribute", f"Spearman ρ (target ≥ {t['spearman']:g})", f"MAE (target ≤ {t['mae']:g})",
                  f"largest mean leakage (target ≤ {t['leakage']:g})", "all three met", "classes with ρ below target",
                  "classes left out"], rows)


# The experiments on why style did not steer (docs/style.md): each arm's style_control result, beside the shipped model's.
STYLE_ARMS = (
    ("style_control", "the shipped fine-tune: 1.5 epochs from the class-only CPU model, style path from zero, "
                      "class and style guided together (w = 2)"),
    ("style_control_scratch", "trained from scratch with style, the CPU recipe's 6 epochs (4× the fine-tune's updates), "
                              "guided together: `python train_conditional.py --config configs/cpu.yaml "
                              "\"style_attributes=[width, height, area, slant, thickness, brightness, pattern]\" "
                              "output_dir=runs/style-scratch sample_every_steps=0`"),
    ("style_control_compositional_ws5", "the shipped fine-tune, the style guided as its own term (w = 2, w_s = 5)"),
)


def measured_arms() -> list[tuple[str, str, dict]]:
    """(result name, what the arm changed, its result) of the arms measured so far."""
    return [(name, what, load(name)) for name, what in STYLE_ARMS if measured(name)]


def style_arms_table() -> str:
    arms = measured_arms()
    attributes = [row["attribute"] for row in arms[0][2]["rows"]]
    rows = [[what, f"`{name}.json`"] + [f"{({r['attribute']: r for r in result['rows']})[a]['spearman']:.2f}"
                                         for a in attributes] for name, what, result in arms]
    return table(["arm", "result"] + [f"ρ {a}" for a in attributes], rows)


def style_arms_provenance() -> str:
    return "From " + "; ".join(f"`{source_path(name)}` (`{result['command']}`)" for name, _, result in measured_arms()) + "."


def style_quality_table(name: str = "style_control") -> str:
    rows = [[q["attribute"], f"{q['level']:g}", f"{q['judge_accuracy']:.3f} ({q['judge_accuracy_floor']:.3f})",
             beside(q["judge_fid"], q["judge_fid_floor"], 2), f"{q['diversity']:.2f} ({q['diversity_real']:.2f})",
             f"{q['diversity'] / q['diversity_real']:.2f}"] for q in load(name)["quality"]]
    return table(["attribute", "requested percentile", "judge acc. (real)", "judge-FID (real floor)",
                  "diversity (real)", "diversity / real"], rows)


def style_none_facts() -> list[dict]:
    """The style model at style=None against each class-only model: its FIDs as multiples of theirs, and whether it is
    as good (the rule: both FIDs within 10 %, judge accuracy >= 0.95)."""
    style, within = load("evaluate_style"), STYLE_TARGETS["within"]
    facts = []
    for folder, evaluation, _ in SHIPPED[:2]:
        base = load(evaluation)
        ok = (style["judge_fid"] <= within * base["judge_fid"] and style["inception_fid"] <= within * base["inception_fid"]
              and style["judge_accuracy"] >= 0.95)
        facts.append({"folder": folder, "judge_fid": style["judge_fid"] / base["judge_fid"],
                      "inception_fid": style["inception_fid"] / base["inception_fid"], "within": ok})
    return facts


def style_none_table() -> str:
    return table(["model", "sampling", "judge acc. (floor)", "judge-FID (floor)", "Inception FID (floor)"],
                 [[f"`{folder}`", settings_of(r).describe(), *metrics_cells(r)]
                  for folder, r in ((folder, load(e)) for folder, e, _ in SHIPPED)])


def convergence_table(r: dict) -> str:
    rows = []
    for run in r["runs"]:
        for e in run["evaluations"]:
            loss = next(x["loss"] for x in reversed(run["loss"]) if x["step"] <= e["step"])
            rows.append([run["name"], e["step"], f"{loss:.4f}", f"{e['judge_accuracy']:.3f}",
                         beside(e["judge_fid"], e["judge_fid_floor"], 2)])
    return table(["model", "updates", "training loss (last logged)", "judge accuracy", "judge-FID (floor)"], rows)


# ---------------------------------------------------------------------------------------------- recipe questions
def autoguidance_facts(name: str) -> dict:
    """An autoguidance screening (quality_vs_steps --guide): its first row (no guide), the guided rows lower than it on
    both FIDs with judge accuracy >= 0.95, and the rows of the guide alone (no classifier-free guidance)."""
    rows = rows_of(name)
    base = rows[0]
    both = [r for r in rows[1:] if settings_of(r).guide and settings_of(r).guided and r["judge_accuracy"] >= 0.95
            and r["judge_fid"] < base["judge_fid"] and r["inception_fid"] < base["inception_fid"]]
    alone = [r for r in rows if settings_of(r).guide and not settings_of(r).guided]
    return {"base": base, "both": [(settings_of(r), r) for r in both], "alone": [(settings_of(r), r) for r in alone]}


def recipe_table(name: str) -> str:
    """One recipe question of benchmarks/recipe_compare.py: its arms beside their floors (the benchmark's own table)."""
    from benchmarks.recipe_compare import arm_table

    return table(*arm_table(load(name)))


def ema_facts(r: dict) -> dict:
    """The recipe's EMA power (0.75), the longest window tried, and how far apart the arms up to 0.75 are (judge-FID)."""
    arms = {a["ema_power"]: a for a in r["arms"]}
    up_to_recipe = [a["judge_fid"] for p, a in arms.items() if p <= 0.75]
    return {"recipe": arms[0.75], "longest_power": max(arms), "longest": arms[max(arms)],
            "spread": max(up_to_recipe) / min(up_to_recipe)}


def loss_facts(r: dict) -> dict:
    """The plain v-MSE and Min-SNR arms, their seeds paired, and whether Min-SNR won on both FIDs on every seed."""
    plain, snr = r["arms"]
    seeds = list(zip(plain["per_seed"], snr["per_seed"]))
    wins = all(s["judge_fid"] < p["judge_fid"] and s["inception_fid"] < p["inception_fid"] for p, s in seeds)
    return {"plain": plain, "snr": snr, "seeds": seeds, "wins": wins}


# ---------------------------------------------------------------------------------------------- speed and memory
def speed_table(r: dict) -> str:
    labels = {"pipeline": "`FashionDDPMPipeline.__call__` (one batched pass of 2B per step)",
              "reference_two_pass": "the diffusers-examples loop (two passes of B per step)",
              "unet_floor": "the U-Net alone, batch 2B (the floor)"}
    return table(["variant", "median s", "ms / step", "images / s"],
                 [[labels[k], num(v["median_s"], 2), num(v["ms_per_step"], 1), num(v["images_per_s"], 3)]
                  for k, v in r["results"].items()])


def throughput_table(r: dict) -> str:
    res = r["results"]
    return table(["loop", "images / s", "ms / update", "peak RSS (MB)"],
                 [[v, num(res[v]["images_per_s"], 1), num(res[v]["s_per_update"] * 1000, 1), num(res[v]["peak_rss_mb"], 0)]
                  for v in ("project", "reference")])


def demo_table(r: dict) -> str:
    rows = [["browser: click → grid", f"{r['median_click_to_grid_s']:.1f} (median of {len(r['browser_rounds'])})"],
            ["browser: click → reverse-process GIF", f"{r['median_click_to_reverse_gif_s']:.1f}"]]
    rows += [[f"{c['users']} gradio_client user(s) at once", ", ".join(f"{x:.1f}" for x in c["latencies_s"])] for c in r["concurrent"]]
    if r.get("fast"):  # (none for a student: it takes only its own sampler)
        rows.append([f"one request with {r['fast']['sampler']} {r['fast']['steps']} steps",
                     ", ".join(f"{x:.1f}" for x in r["fast"]["latencies_s"])])
    return table(["what", "seconds"], rows)


def memory_table(r: dict) -> str:
    return table(["format", "images", "RSS before (MB)", "peak RSS (MB)", "growth (MB)"],
                 [[x["format"], f"{x['images']:,}", num(x["rss_before_mb"], 0), num(x["peak_rss_mb"], 0), num(x["growth_mb"], 0)]
                  for x in r["runs"]])


def cas_table(r: dict) -> str:
    return table(["training data", "images", "test accuracy % (mean ± std)"],
                 [[row["name"], f"{row['train_images']:,}", f"{row['mean'] * 100:.2f} ± {row['std'] * 100:.2f}"] for row in r["rows"]])


# ---------------------------------------------------------------------------------------------- few passes
# (what, result file, the student's label in it): the few-step students of each stage and method, oldest first
METHOD_RECORDS = [
    ("trajectory, stage 1 (`configs/distill.yaml`)", "few_passes_stage1", None),
    ("trajectory, stages 1-2 (`configs/distill_stages.yaml`, stage 2)", "few_passes_stage3_w2", "distill-cpu-stage2"),
    ("trajectory, stages 1-3 (`configs/distill_stages.yaml`, stage 3), at w = 2", "few_passes_stage3_w2", "distill-cpu-stage3"),
    ("trajectory, stages 1-3 at its chosen w (shipped before stage 4)", "few_passes_stage4", "fashion-ddpm-cpu-fast"),
    ("trajectory, stages 1-4 (`configs/distill_stages.yaml`, stage 4)", "few_passes_stage5", "distill-cpu-stage4"),
    ("trajectory, stages 1-5 (`configs/distill_stages.yaml`, stage 5), shipped before stage 8", "few_passes_stage5",
     "fashion-ddpm-cpu-fast"),
    ("trajectory, stages 1-6 (`configs/distill_stages.yaml`, stage 6), not shipped on its own", "few_passes_stage6",
     "distill-cpu-stage6"),
    ("trajectory, stages 1-7 (`configs/distill_stages.yaml`, stage 7), not shipped on its own", "few_passes_stage7",
     "distill-cpu-stage7"),
    ("trajectory, stages 1-8 (`configs/distill_stages.yaml`, stage 8), shipped: `pretrained/fashion-ddpm-cpu-fast`", "few_passes",
     "fashion-ddpm-cpu-fast"),
    ("consistency, at stage 1's budget (`configs/distill_consistency.yaml`)", "few_passes", "distill-cpu-consistency"),
]


def method_entries() -> tuple[list[tuple[str, dict, str | None]], list[str]]:
    """(what, result, student label) of every measured stage and method, and the result files they come from (each once)."""
    records = {name: load(name) for _, name, _ in METHOD_RECORDS if measured(name)}
    entries = [(what, records[name], label) for what, name, label in METHOD_RECORDS if name in records
               and (label is None or label in [s["label"] for s in records[name].get("students", [])])]
    return entries, list(records)

