"""Every published number, rendered from its result file: docs/results.md, the README's model table and the shipped
models' cards (their training, metrics and "As training data" sections), and pretrained/fashion-clip's card.

    python -m benchmarks.report            # rewrite them from benchmarks/results/*.json
    python -m benchmarks.report --check    # exit 1 naming each file that differs (tests/test_report.py runs it)

A number no result file holds is not published: the prose (benchmarks/templates/*.md.j2) states no measured number,
and every table (benchmarks/tables.py, or the benchmark's own `to_markdown`) says which file it comes from, the command
that made it (or why it cannot be re-run from a clone) and the hardware it ran on.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import tempfile
from pathlib import Path

import jinja2

from benchmarks import tables as t
from benchmarks.tables import FAST, REPO, RESULTS, SHIPPED, load, provenance, source_path

RESULTS_DOC = REPO / "docs" / "results.md"
README = REPO / "README.md"
README_TABLE = re.compile(r"<!-- results:models:start -->.*?<!-- results:models:end -->", re.S)
CLIP_FOLDER = REPO / "pretrained" / "fashion-clip"
# results kept as records of runs that cannot be made again from a clone (each says why in its file)
NOT_REPRODUCIBLE = ("eps_3ep_samplers", "quality_ddpm100", "gpu_guidance_sweep_9.9ep", "gpu_model_ddpm100_vs_unipc10_9.9ep",
                    "sampling_speed_1thread_loaded")
TEMPLATES = jinja2.Environment(loader=jinja2.FileSystemLoader(REPO / "benchmarks" / "templates"), undefined=jinja2.StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
TEMPLATES.filters["fmt"] = format  # {{ value|fmt(".2f") }}: Python's format spec, as the tables use
TEMPLATES.globals.update(t=t, benchmark=t.benchmark)


def results_doc() -> str:
    """docs/results.md: benchmarks/templates/results.md.j2 with the tables of the result files."""
    unrendered = sorted(p.name for p in RESULTS.glob("*.md") if not (RESULTS / f"{p.stem}.json").is_file())
    return TEMPLATES.get_template("results.md.j2").render(unrendered=unrendered, not_reproducible=NOT_REPRODUCIBLE)


def clip_card() -> str:
    """pretrained/fashion-clip/README.md: what the CLIP is, how it was trained, what it measures (from the results)."""
    training = json.loads((CLIP_FOLDER / "training.json").read_text())
    return TEMPLATES.get_template("fashion_clip_card.md.j2").render(training=training)


# ---------------------------------------------------------------------------------------------- the files
def render_cards(root: Path):
    """The shipped models' cards, rendered into copies under `root` (so --check compares without writing)."""
    from pipeline.evaluation.fidelity import metrics_markdown
    from pipeline.training.model_card import fill_metrics, fill_section, rewrite_model_card, write_student_card

    cards = {}
    for folder, evaluation, cas in SHIPPED:
        card = root / folder / "README.md"
        card.parent.mkdir(parents=True, exist_ok=True)
        source = REPO / folder
        for name in ("README.md", "train_config.json", "metrics.jsonl", "model_index.json"):
            (card.parent / name).write_bytes((source / name).read_bytes())
        (card.parent / "unet").mkdir(exist_ok=True)
        (card.parent / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(source / "unet" / "diffusion_pytorch_model.safetensors")
        rewrite_model_card(card.parent, local_path=folder)
        result = load(evaluation)
        fill_metrics(card, metrics_markdown(result), result)
        if cas:
            fill_section(card, "synthetic", "As training data", t.benchmark("synthetic_data").card_section(load(cas), source_path(cas)))
        if json.loads((source / "train_config.json").read_text()).get("style_attributes"):
            fill_section(card, "style", "Style control", "\n\n".join([
                t.style_control_table(), provenance("style_control"),
                "The full tables (quality and diversity at each requested percentile, the convergence figure): "
                "`docs/results.md#style-conditioning` in the fashion-ddpm repository."]))
        cards[REPO / folder / "README.md"] = card.read_text(encoding="utf-8")
    if t.fast_shipped():  # the student's card: its exported text, its evaluation and the comparison with its teacher
        folder, evaluation = FAST
        card = root / folder / "README.md"
        card.parent.mkdir(parents=True, exist_ok=True)
        for name in ("distill.json", "model_index.json", "condition_encoder/config.json", "scheduler/scheduler_config.json"):
            (card.parent / name).parent.mkdir(parents=True, exist_ok=True)
            (card.parent / name).write_bytes((REPO / folder / name).read_bytes())
        write_student_card(card.parent, local_path=folder)
        result = load(evaluation)
        fill_metrics(card, metrics_markdown(result) + f"\n\nRe-measure: `fashion-ddpm evaluate --model {folder} "
                     "--num-per-class 100`.", result)
        if t.measured("few_passes"):
            fill_section(card, "teacher", "Against its teacher", "\n\n".join([
                t.body("few_passes"), provenance("few_passes")]))
        cards[REPO / folder / "README.md"] = card.read_text(encoding="utf-8")
    return cards


def rendered() -> dict[Path, str]:
    """Every file the report owns, as the result files give it."""
    files = {RESULTS_DOC: results_doc()}
    readme = README.read_text(encoding="utf-8")
    block = f"<!-- results:models:start -->\n{t.models_table()}\n<!-- results:models:end -->"
    if not README_TABLE.search(readme):
        raise SystemExit(f"error: {README} has no <!-- results:models:start --> ... <!-- results:models:end --> block")
    files[README] = README_TABLE.sub(lambda _: block, readme)
    with tempfile.TemporaryDirectory() as tmp:
        files.update(render_cards(Path(tmp)))
    files[CLIP_FOLDER / "README.md"] = clip_card()
    return files


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file differs")
    args = p.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current == text:
            continue
        stale.append(path)
        if args.check:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(path), "rendered", lineterm="", n=1)
            print("\n".join(list(diff)[:40]), file=sys.stderr)
        else:
            path.write_text(text, encoding="utf-8")
    names = ", ".join(p.relative_to(REPO).as_posix() for p in stale) or "nothing"
    if args.check and stale:
        print(f"stale: {names}; run `python -m benchmarks.report` and commit the result", file=sys.stderr)
        return 1
    print(f"{'stale' if args.check else 'rewrote'}: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
