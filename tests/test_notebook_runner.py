"""`csrip demo`'s runner on a small generated notebook: progress inside the notebook (cell k of n, with
the cell's own printed lines forwarded), and the executed tour as HTML with its figures in the page."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from csrip_lib.cli import main
from csrip_lib.tutorial import notebook_runner

CELLS = ["PRESET = 'quick'",
         "import sys, time\nfor i in range(3):\n    print(f'\\rstep {i + 1}/3', end='', flush=True)\n"
         "    time.sleep(0.6)",
         "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nfrom IPython.display import "
         "display\nfig = plt.figure(figsize=(1, 1))\nplt.plot([0, 1])\ndisplay(fig)"]


@pytest.fixture()
def notebook(tmp_path) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb" / "07_toy.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


def test_last_line_is_a_progress_bar_latest_state():
    assert notebook_runner.last_line("epoch 1\r 10%|#  |\r 20%|##  |\r") == "20%|##  |"
    assert notebook_runner.last_line("\n\n") == ""
    assert notebook_runner.last_line("x" * 100, width=10) == "xxxxxxx..."


@pytest.mark.slow
def test_demo_counts_cells_forwards_the_cells_lines_and_writes_html(notebook, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CSRIP_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setattr(notebook_runner, "find_notebooks", lambda only=None: [notebook])
    out = tmp_path / "build"
    assert main(["demo", "--data", str(notebook.parent), "--out", str(out)]) == 0  # no faces are read
    captured = capsys.readouterr()
    assert "[1/1] 07_toy" in captured.err and "3/3" in captured.err  # the bar counts code cells
    assert "step 3/3" in captured.err  # the running cell's own line, forwarded
    html = out / "html" / "07_toy.html"
    assert f"read the tour in a browser: {out / 'html'}/" in captured.out and str(html) in captured.out
    page = html.read_text()
    assert "step 3/3" in page and "data:image/png;base64," in page  # outputs and the figure are in the page
