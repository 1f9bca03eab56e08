"""The library's floors (README "The library"): imports point down or sideways, never up, never in a
cycle, and evaluation never reaches training. Imports are read with `ast` from every csrip_lib module,
those inside functions included; nothing is imported or run."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "csrip_lib"

# The one statement of the layer order, top floor first. A module may import from its own floor
# (without a cycle) and from any floor below. The models/ subpackage is one unit, "models".
LAYERS: list[set[str]] = [
    {"__init__", "__main__", "cli"},                  # the command line; the notebooks' facade
    {"widgets", "notebook_runner", "tour", "reproduce"},  # what the notebooks drive; `csrip reproduce`
    {"figures", "ablation", "competitors"},           # the paper's figures and tables
    {"evaluate", "hallucinate", "analysis", "error_analysis", "train_sr", "train_recognizers"},
    {"identity", "judge", "metrics", "inference", "train", "zoo"},
    {"models", "losses", "data", "download", "synthetic"},
    {"checkpoint", "degradation", "runtime", "outputs", "progress", "argtypes", "config", "errors", "results"},
]
TRAINING = {"train", "train_sr", "train_recognizers", "competitors", "ablation"}
EVALUATION = {"evaluate", "figures", "identity", "judge", "metrics", "inference"}  # never reach TRAINING


def module_name(path: Path) -> str:
    """csrip_lib/models/sr.py -> "models.sr"; csrip_lib/__init__.py -> "__init__"."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def unit(module: str) -> str:
    """The name a module has in LAYERS: the models/ subpackage is one unit."""
    return module.split(".")[0]


def imports(path: Path) -> set[str]:
    """The csrip_lib modules `path` imports anywhere in the file (names as `module_name` gives them)."""
    me = module_name(path)
    package = me.split(".")[:-1] if path.name != "__init__.py" or me == "__init__" else me.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("csrip_lib.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "csrip_lib":
                base = node.module.split(".")[1:]
            else:
                continue
            # `from . import zoo` / `from .models import sr` name modules; `from .x import f` names x
            targets = [".".join(base + [a.name]) for a in node.names
                       if (PACKAGE.joinpath(*base, a.name + ".py")).is_file()] or [".".join(base)]
        else:
            continue
        found.update(t for t in targets if t and t != me)
    return found


GRAPH = {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}
FLOOR = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def test_every_module_has_a_floor():
    assert {unit(m) for m in GRAPH} - FLOOR.keys() == set(), "add new modules to LAYERS"
    assert FLOOR.keys() - {unit(m) for m in GRAPH} == set(), "LAYERS names a module that is gone"


def test_imports_parse_as_expected():
    """The parser sees function-level imports and relative imports from the subpackage."""
    assert "runtime" in GRAPH["train"] and "runtime" in GRAPH["models.sr"]
    assert "config" in GRAPH["models.registry"] and "models.sr" in GRAPH["models.registry"]
    assert "zoo" in GRAPH["tour"] and "models.registry" in GRAPH["evaluate"]


def test_no_module_imports_upward():
    upward = [f"{m} (floor {FLOOR[unit(m)]}) imports {t} (floor {FLOOR[unit(t)]})"
              for m, targets in GRAPH.items() for t in targets if FLOOR[unit(t)] < FLOOR[unit(m)]]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> None:
        if m in path:
            pytest.fail("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m not in done:
            for t in sorted(GRAPH.get(m, ())):
                visit(t, path + [m])
            done.add(m)

    for m in GRAPH:
        visit(m, [])


def reachable(m: str) -> set[str]:
    seen, todo = set(), [m]
    while todo:
        for t in GRAPH.get(todo.pop(), ()):
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return seen


@pytest.mark.parametrize("module", sorted(EVALUATION))
def test_evaluation_never_reaches_training(module):
    assert not {unit(t) for t in reachable(module)} & TRAINING, (
        f"{module} imports training code (directly or through another module)")


def test_the_facade_is_cheap_and_every_name_resolves():
    """`from csrip_lib import ...` (the notebooks' imports) names real objects of their modules, never
    a module's own name, and `import csrip_lib` alone imports no torch (`csrip --help` stays instant)."""
    code = "import sys, csrip_lib; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    import csrip_lib

    assert not set(csrip_lib.__all__) & ({unit(m) for m in GRAPH} | set(GRAPH))
    for module, names in csrip_lib.API.items():
        owner = importlib.import_module(f"csrip_lib.{module}")
        for name in names:
            assert getattr(csrip_lib, name) is getattr(owner, name), name
