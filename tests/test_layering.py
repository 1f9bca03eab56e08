"""The library's floors (docs/library.md): imports point down or sideways, never up, never in a
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

# The one statement of the layer order, top floor first, by package: each sub-package is one unit on
# one floor (its folder is its floor). A module may import from its own unit (without a cycle) and
# from any floor below.
LAYERS: list[set[str]] = [
    {"__init__", "__main__", "cli", "reproduce",    # the command line, the notebooks' facade, `csrip reproduce`
     "degradation", "metrics"},                     # the public paths the README and docs/ name (they re-export)
    {"tutorial"},                                   # what the notebooks drive; the paper's figures
    {"training"},                                   # the harness, both stages, competitors, Tables 1-4
    {"evaluation"},                                 # scoring and applying trained models
    {"models", "data", "losses"},                   # networks and shipped models; face folders; Eq. 2-4
    {"core"},                                       # configuration, degradation, checkpoints, console
]
TRAINING = {"training"}
EVALUATION = {"evaluation", "tutorial.figures"}  # never reach TRAINING


def module_name(path: Path) -> str:
    """csrip_lib/models/sr.py -> "models.sr"; csrip_lib/__init__.py -> "__init__"."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def unit(module: str) -> str:
    """The name a module has in LAYERS: a sub-package is one unit ("training.sr" -> "training")."""
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
    assert "core.runtime" in GRAPH["training.harness"] and "core.runtime" in GRAPH["models.sr"]
    assert "core.config" in GRAPH["models.registry"] and "models.sr" in GRAPH["models.registry"]
    assert "models.zoo" in GRAPH["tutorial.tour"] and "models.registry" in GRAPH["evaluation.evaluate"]
    assert "core.degradation" in GRAPH["degradation"]  # a public path re-exports its module


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


def test_every_folder_is_one_floor():
    """The folders show the floors: every sub-package is named in LAYERS as a whole, never module by module."""
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages <= FLOOR.keys()
    assert not {m for m in FLOOR if "." in m}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m in EVALUATION or unit(m) in EVALUATION))
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


def test_the_public_paths_of_design_md_are_the_moved_objects():
    """`from csrip_lib.degradation import make_pyramid, residual` and `from csrip_lib.metrics import psnr,
    ssim_eval` (the documented entry points) give the functions of core.degradation and evaluation.metrics."""
    from csrip_lib import degradation, metrics
    from csrip_lib.core import degradation as core_degradation
    from csrip_lib.evaluation import metrics as evaluation_metrics

    for name in ("make_pyramid", "residual", "degrade", "gaussian_blur"):
        assert getattr(degradation, name) is getattr(core_degradation, name)
    for name in ("psnr", "ssim_eval"):
        assert getattr(metrics, name) is getattr(evaluation_metrics, name)
