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
