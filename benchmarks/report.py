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
def copy_files(folder: str, names: tuple[str, ...], root: Path) -> Path:
    """`names` of the model folder `folder` copied under `root` (a card is filled there, so --check writes nothing)."""
    copy = root / folder
    for name in names:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((REPO / folder / name).read_bytes())
    return copy


def shipped_card(folder: str, evaluation: str, cas: str | None, root: Path) -> str:
    """A shipped model's card: its exported text, its evaluation, its CAS and (a style model) its style control."""
    from pipeline.evaluation.fidelity import metrics_markdown
    from pipeline.training.model_card import fill_metrics, fill_section, rewrite_model_card

    copy = copy_files(folder, ("README.md", "train_config.json", "metrics.jsonl", "model_index.json"), root)
    (copy / "unet").mkdir(exist_ok=True)
    (copy / "unet" / "diffusion_pytorch_model.safetensors").symlink_to(REPO / folder / "unet" / "diffusion_pytorch_model.safetensors")
    rewrite_model_card(copy, local_path=folder)
    card, result = copy / "README.md", load(evaluation)
    fill_metrics(card, metrics_markdown(result), result)
    if cas:
        fill_section(card, "synthetic", "As training data", t.benchmark("synthetic_data").card_section(load(cas), source_path(cas)))
    if json.loads((copy / "train_config.json").read_text()).get("style_attributes"):
        fill_section(card, "style", "Style control", TEMPLATES.get_template("style_card_section.md.j2").render().rstrip("\n"))
    return card.read_text(encoding="utf-8")


def student_card(root: Path) -> str:
    """The distilled student's card: its exported text, its evaluation and the comparison with its teacher."""
    from pipeline.evaluation.fidelity import metrics_markdown
    from pipeline.training.model_card import fill_metrics, fill_section, write_student_card

    folder, evaluation = FAST
    copy = copy_files(folder, ("distill.json", "model_index.json", "condition_encoder/config.json",
                               "scheduler/scheduler_config.json"), root)
    write_student_card(copy, local_path=folder)
    card, result = copy / "README.md", load(evaluation)
    fill_metrics(card, metrics_markdown(result) + f"\n\nRe-measure: `fashion-ddpm evaluate --model {folder} "
                 "--num-per-class 100`.", result)
    if t.measured("few_passes"):
        fill_section(card, "teacher", "Against its teacher", "\n\n".join([t.body("few_passes"), provenance("few_passes")]))
    return card.read_text(encoding="utf-8")


def rendered() -> dict[Path, str]:
    """Every file the report owns, as the result files give it."""
    files = {RESULTS_DOC: results_doc()}
    readme = README.read_text(encoding="utf-8")
    block = f"<!-- results:models:start -->\n{t.models_table()}\n<!-- results:models:end -->"
    if not README_TABLE.search(readme):
        raise SystemExit(f"error: {README} has no <!-- results:models:start --> ... <!-- results:models:end --> block")
    files[README] = README_TABLE.sub(lambda _: block, readme)
    with tempfile.TemporaryDirectory() as tmp:
        for folder, evaluation, cas in SHIPPED:
            files[REPO / folder / "README.md"] = shipped_card(folder, evaluation, cas, Path(tmp))
        if t.fast_shipped():
            files[REPO / FAST[0] / "README.md"] = student_card(Path(tmp))
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
