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
