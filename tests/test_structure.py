"""The shape of the house: commands above the library, no import circles, a self-contained pipeline file, fast --help."""

import ast
from pathlib import Path

import pytest

from conftest import heavy_modules_after

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the package modules it imports (at any depth in the file, relative imports resolved)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "pretrained" not in p.parts}
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules}
        graph[name] = found - {name}
    return graph


def test_only_commands_import_the_cli():
    offenders = {m: sorted(i for i in deps if i.startswith("pipeline.cli"))
                 for m, deps in _imports().items() if not m.startswith("pipeline.cli")}
    assert not {m: d for m, d in offenders.items() if d}, "library modules must not import pipeline.cli"


def test_no_import_cycles():
    graph = _imports()
    # package __init__ files only re-export lazily (PEP 562) and are not edges of the dependency graph
    graph = {m: {d for d in deps if d not in ("pipeline",)} for m, deps in graph.items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in graph.get(node, ()):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import cycles: {cycles}"


def test_visualize_does_not_reach_up_into_training():
    # visualize draws what training wrote (the loss curve) through pipeline.plots, which lies below both
    graph = _imports()
    assert not {m for m in graph["pipeline.visualize"] if m.startswith("pipeline.training")}
    assert not {m for m in graph["pipeline.plots"] if m.startswith("pipeline.training")}


def test_train_script_is_the_train_command():
    # train_conditional.py builds its parser with the command's own builder and runs the command's function: no
    # second parser to drift
    script = ast.parse((PACKAGE.parent / "train_conditional.py").read_text())
    calls = {n.func.id for n in ast.walk(script) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"add_train_args", "run_command"} <= calls
    assert not [n for n in ast.walk(script) if isinstance(n, ast.Attribute) and n.attr == "add_argument"]


def test_pipeline_file_is_self_contained():
    # both are copied beside a model's weights and loaded from there without this package
    assert _imports()["pipeline.pipeline_fashion_ddpm"] == set()
    assert _imports()["pipeline.condition_encoder"] == set()


@pytest.mark.slow  # subprocess
@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["evaluate", "--num-per-class", "0"],
                                  ["synthesize", "--help"], ["synthesize", "--per-class", "0", "--out", "x"],
                                  ["demo", "--help"], ["train", "--help"],
                                  ["train", "--config", "configs/tiny.yaml", "num_epochs=zero"]])
def test_cli_help_and_argument_errors_import_no_torch(argv):
    heavy, printed = heavy_modules_after("import pipeline.demo\nfrom pipeline.cli import main\nmain(sys.argv[1:])", argv)
    assert heavy == []
    assert argv[-1] != "--help" or "usage: fashion-ddpm" in printed


@pytest.mark.slow  # subprocess
def test_train_help_imports_no_torch():
    code = "import runpy\nsys.argv = ['train_conditional.py', '--help']\nrunpy.run_path('train_conditional.py', run_name='__main__')"
    heavy, printed = heavy_modules_after(code)
    assert heavy == [] and "configs/README.md" in printed
    assert (PACKAGE.parent / "configs" / "README.md").is_file()


# ---------------------------------------------------------------------------------------------------- house rules
REPO = PACKAGE.parent
CODE = [p for root in ("pipeline", "benchmarks") for p in (REPO / root).rglob("*.py") if "pretrained" not in p.parts]
COPIED_BESIDE_THE_WEIGHTS = {PACKAGE / "pipeline_fashion_ddpm.py", PACKAGE / "condition_encoder.py"}


def _trees():
    return {path: ast.parse(path.read_text()) for path in CODE}


def test_no_function_is_longer_than_80_lines():
    long = []
    for path, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                docstring = body[0] if body and isinstance(body[0], ast.Expr) and isinstance(
                    getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str) else None
                lines = node.end_lineno - node.lineno + 1 - (docstring.end_lineno - docstring.lineno + 1 if docstring else 0)
                if lines > 80:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these (80 lines at most, the docstring not counted): " + "; ".join(long)


def test_no_private_name_is_imported_from_another_module():
    found = [f"{path.relative_to(REPO)}:{node.lineno} {alias.name}" for path, tree in _trees().items()
             for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not found, "a private name is the module's own; give it a public name where it lives: " + "; ".join(found)


def test_the_trainer_and_the_distiller_run_on_the_one_training_loop():
    from pipeline.training.distill.distiller import Distiller
    from pipeline.training.loop import TrainingLoop
    from pipeline.training.trainer import Trainer

    for job in (Trainer, Distiller):
        assert issubclass(job, TrainingLoop)
        overridden = {name for name in ("run", "update", "begin", "prepare", "log_window") if name in vars(job)}
        assert overridden <= {"begin"}, f"{job.__name__} redefines the loop's {sorted(overridden)}"
    assert "Accelerator(" not in (PACKAGE / "training" / "trainer.py").read_text() + \
        "".join(p.read_text() for p in (PACKAGE / "training" / "distill").glob("*.py"))


def test_files_are_written_through_the_io_module():
    """Renames of temporary files (os.replace / os.rename) live in pipeline/io.py; the checkpoints keep their own
    (Accelerate writes a checkpoint folder, renamed once complete) and the copied files have none."""
    allowed = {PACKAGE / "io.py", PACKAGE / "training" / "checkpoints.py"}
    found = [f"{path.relative_to(REPO)}:{node.lineno}" for path, tree in _trees().items() if path not in allowed
             for node in ast.walk(tree) if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
             and node.value.id == "os" and node.attr in ("replace", "rename")]
    assert not found, "write through pipeline.io (atomic_path, atomic_write_*, staged_folder, move_into): " + "; ".join(found)


def test_ints_are_checked_through_the_checks_module():
    """`isinstance(x, bool) or not isinstance(x, int)` is written once, in pipeline/checks.py (the files copied beside
    the weights keep their own)."""
    pattern = "not isinstance("
    found = [f"{path.relative_to(REPO)}" for path in CODE if path not in COPIED_BESIDE_THE_WEIGHTS | {PACKAGE / "checks.py"}
             and "isinstance(" in path.read_text() and ", bool)" in path.read_text() and pattern in path.read_text()
             and any("bool)" in line and pattern in line for line in path.read_text().splitlines())]
    assert not found, "use pipeline.checks (is_int, is_number, check_int): " + "; ".join(found)
