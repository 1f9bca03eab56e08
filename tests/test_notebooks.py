"""The tutorial notebooks: committed clean, and each runs headless top to bottom in quick mode.

Parametrized over notebooks/NN_*.ipynb, so a new notebook is tested without touching this file.
Execution writes figures and runs to temporary folders and uses face_root (real LFW if CSRIP_DATA
is set, synthetic faces otherwise); runs are shared by the session so later notebooks can reuse
what earlier ones trained, as in `make demo`.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from csrip_lib.core.console import CSRIPError
from csrip_lib.tutorial import verdicts
from csrip_lib.tutorial.notebook_runner import find_notebooks, inject_parameters, run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = find_notebooks(ROOT / "notebooks")
ids = [p.stem for p in NOTEBOOKS]


def test_notebooks_exist():
    assert NOTEBOOKS, f"no notebooks/NN_*.ipynb in {ROOT / 'notebooks'}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_committed_notebook_is_clean(path):
    """Committed without outputs, nbformat-valid, python3 kernel, parameters cell near the top."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    dirty = [n for n, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"cells {dirty} have outputs or execution counts: strip them before committing"
    tagged = [n for n, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] < 5, "need exactly one cell tagged 'parameters' near the top"
    assert re.search(r'^PRESET\s*=\s*"quick"', nb.cells[tagged[0]].source, re.M)


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.mark.slow
@pytest.mark.xdist_group("notebooks")  # one process, in order: later notebooks reuse earlier runs
@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids)
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch, face_root, runs_dir):
    """Every code cell ran, figures were written under the paper's numbering, and every verdict sentence it
    printed agrees with the numbers printed beside it (`tutorial.verdicts.check`)."""
    figures = tmp_path / "figures"
    monkeypatch.setenv("CSRIP_DATA", str(face_root))
    monkeypatch.setenv("CSRIP_FIGURES", str(figures))
    monkeypatch.setenv("CSRIP_RUNS", str(runs_dir))
    out = run_notebook(path, tmp_path / "build", {"PRESET": "quick"})
    executed = nbformat.read(out, as_version=4)
    assert all(c.get("execution_count") for c in executed.cells if c.cell_type == "code" and c.source.strip())
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", [])
                      if o.get("output_type") == "stream")
    assert verdicts.check(printed) == [], "a printed verdict disagrees with the numbers printed beside it"
    written = sorted(p.name for p in figures.glob("*.png"))
    assert written, "a notebook should save its figures via csrip_lib.core.config.figures_dir()"
    assert all(re.fullmatch(r"fig\d\d[a-z]?_\w+\.png", name) for name in written), written


# ----------------------------------------------------------------------------- the runner itself


def tiny_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# tiny"),
                nbformat.v4.new_code_cell('PRESET = "paper"', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_inject_parameters_follows_the_parameters_cell(tmp_path):
    nb = nbformat.read(tiny_notebook(tmp_path / "01_t.ipynb", "x = 1"), as_version=4)
    nb = inject_parameters(nb, {"PRESET": "quick", "STEPS": 3})
    assert nb.cells[2].metadata["tags"] == ["injected-parameters"]
    assert "PRESET = 'quick'\nSTEPS = 3\n" in nb.cells[2].source and nb.cells[3].source == "x = 1"


def test_runner_executes_in_the_notebook_folder_with_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("CSRIP_TEST_MARK", "from-parent")
    src = tiny_notebook(tmp_path / "01_t.ipynb",
                        "import os\nprint(PRESET, os.getcwd(), os.environ['CSRIP_TEST_MARK'])")
    out = run_notebook(src, tmp_path / "build", {"PRESET": "quick"}, timeout=120)
    text = nbformat.read(out, as_version=4).cells[-1].outputs[0]["text"]
    assert text.split() == ["quick", str(tmp_path), "from-parent"]
    assert nbformat.read(src, as_version=4).cells[-1].outputs == []  # source left untouched


def test_kernels_run_without_the_unencrypted_tcp_warning(tmp_path, capfd):
    """ipykernel >= 7 logs "Kernel is running over TCP without encryption" to stderr for every notebook
    on TCP; the runner connects its local kernels over IPC sockets in a temporary folder instead (POSIX)."""
    import os

    src = tiny_notebook(tmp_path / "03_t.ipynb", "print('ran')")
    run_notebook(src, tmp_path / "build", timeout=120)
    err = capfd.readouterr().err
    if os.name == "posix":
        assert "without encryption" not in err, err
    assert nbformat.read(tmp_path / "build" / "03_t.ipynb", as_version=4).cells[-1].outputs[0]["text"] == "ran\n"


def test_runner_reports_the_failing_cell(tmp_path):
    src = tiny_notebook(tmp_path / "02_t.ipynb", "raise ValueError('no faces here')")
    with pytest.raises(CSRIPError, match=r"02_t\.ipynb failed in cell 2.*ValueError: no faces here"):
        run_notebook(src, tmp_path / "build", timeout=120)
    executed = nbformat.read(tmp_path / "build" / "02_t.ipynb", as_version=4)
    assert executed.cells[-1].outputs[0]["ename"] == "ValueError"  # traceback kept for reading


def test_a_kernel_interrupted_behind_the_runners_back_is_an_interruption_not_a_failure(tmp_path):
    """A Ctrl-C that reaches the kernel before this process handles one (or with SIGINT ignored here) ends
    the cell in KeyboardInterrupt: `csrip demo` must say interrupted (exit 130), not that the notebook failed."""
    src = tiny_notebook(tmp_path / "02_t.ipynb", "raise KeyboardInterrupt")
    with pytest.raises(KeyboardInterrupt):
        run_notebook(src, tmp_path / "build", timeout=120)
    assert nbformat.read(tmp_path / "build" / "02_t.ipynb", as_version=4).cells[-1].outputs  # what ran is kept


def test_progress_bars_are_plain_text_in_a_kernel(monkeypatch):
    """Inside Jupyter the bars are text on stdout with a fixed width: a saved notebook keeps their
    last line, where tqdm.auto's widget bar would be a dead "model not found" widget."""
    import io

    from csrip_lib.core import console as progress

    kernel_stream = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    monkeypatch.setattr("sys.stdout", kernel_stream)
    assert progress.in_kernel()
    bar = progress.tqdm(range(3), desc="train")
    list(bar)
    bar.close()
    assert bar.ncols == progress.NOTEBOOK_COLUMNS and "train: 100%" in kernel_stream.getvalue()
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert not progress.in_kernel()
