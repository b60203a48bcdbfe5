"""Published numbers are rendered, never typed: docs/results.md, the README's model table and the shipped models' cards
must be exactly what `python -m benchmarks.report` makes from benchmarks/results/*.json (as `ruff format --check` is
for code). After a new result: run `python -m benchmarks.report` and commit what it rewrote."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_published_numbers_are_rendered_from_their_result_files():
    from benchmarks.report import rendered

    stale = [path.relative_to(REPO).as_posix() for path, text in rendered().items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} differ from what their result files give: run `python -m benchmarks.report`"


def test_the_readme_is_a_short_guide_that_points_to_the_results():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    for page in ("docs/results.md", "docs/sampling.md", "docs/training.md", "docs/evaluation.md", "docs/synthetic.md",
                 "docs/demo.md", "docs/style.md", "model_card.md"):
        assert f"({page})" in readme and (REPO / page).is_file(), page  # linked, and there (model_card.md resolves)


def test_no_result_is_published_without_its_source():
    """Every table of docs/results.md is followed by the file it came from and how it was made."""
    text = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    blocks = [b for b in text.split("\n\n") if b.startswith("|")]
    assert blocks
    after = text.split("\n\n")
    for i, block in enumerate(after):
        if block.startswith("|"):
            following = " ".join(after[i + 1:i + 4])
            assert "From `benchmarks/results/" in following, block.splitlines()[0]


def test_benchmarks_share_code_through_the_harness_or_the_library_only():
    """A benchmark imports no other benchmark (what they share is in benchmarks/harness.py or pipeline/); only the
    report and its tables reach into a benchmark, for the table it renders itself. The smoke model is the harness's."""
    import ast

    shared = {"benchmarks", "benchmarks.harness"}
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        if path.stem in ("report", "tables"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        others = sorted(m for m in imported if m.startswith("benchmarks") and m not in shared)
        assert not others, f"{path.name} imports {others}: move what they share into benchmarks/harness.py or pipeline/"
        if path.stem != "harness":
            assert "from_config_dict(unet=TINY_UNET" not in path.read_text(encoding="utf-8"), f"{path.name}: use harness.smoke_pipeline"
