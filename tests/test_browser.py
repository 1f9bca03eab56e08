"""The notebooks as a learner meets them: JupyterLab in a real browser (Playwright + Debian's chromium).

One JupyterLab server on 127.0.0.1 (free port, token) serves copies of notebooks 01 and 02 (and 05
with PRESET = "pretrained" when the shipped models exist). For each notebook the test runs all
cells, fails on any error output, moves every slider one step with the keyboard and checks that the
figure's PNG changes, saves, then shuts the kernel down and reopens the notebook in a fresh browser
context: no "Error displaying widget" may appear and every saved figure must be shown.
Screenshots go to build/browser/ (CI keeps build/ as artifacts).

Skipped, with the reason, only where Playwright or a chromium binary is missing (`make test`
installs both when it can: pip extra "test", `apt-get install chromium` as root).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("CSRIP_CHROMIUM", "/usr/bin/chromium")
RUN_TIMEOUT_S = 900  # Run All of one notebook on a busy 2-core CPU
LAB_USER_SETTINGS = {  # every cell in the DOM, so the checks see the whole notebook
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                     "(pip install -e '.[test]')")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM} "
                                 "(`apt-get install chromium`, or set CSRIP_CHROMIUM)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET"):
    req = urllib.request.Request(f"{base}{path}", method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def _notebooks(work: Path) -> list[str]:
    from csrip_lib.models import zoo
    from csrip_lib.tutorial import tour

    names = []
    for src in ("01_degradation_model.ipynb", "02_residual_images.ipynb"):
        shutil.copy(ROOT / "notebooks" / src, work / src)
        names.append(src)
    if all(tour.has_shipped(n) for n in (zoo.DEFAULT_SR, *tour.shipped_pair(tour.PRETRAINED).values())):
        nb = nbformat.read(ROOT / "notebooks" / "05_cascaded_sr_training.ipynb", as_version=4)
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        params.source = params.source.replace('PRESET = "quick"', 'PRESET = "pretrained"', 1)
        nbformat.write(nb, work / "05_pretrained.ipynb")
        names.append("05_pretrained.ipynb")
    return names


@pytest.fixture(scope="module")
def lab(tmp_path_factory, face_root):
    """(base url, token, work folder, notebook names) of a JupyterLab serving notebook copies."""
    from csrip_lib.tutorial.widgets import install_lab_settings

    install_lab_settings(sys.prefix)  # as `make venv` does: widget state is saved with the notebook
    tmp = tmp_path_factory.mktemp("lab")
    work, settings = tmp / "work", tmp / "settings"
    work.mkdir()
    for rel, values in LAB_USER_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(values))
    names = _notebooks(work)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "CSRIP_DATA": str(face_root), "CSRIP_FIGURES": str(tmp / "figures"),
           "CSRIP_RUNS": str(tmp / "runs"), "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log = open(tmp / "lab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
                               f"--port={port}", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={work}", "--ServerApp.port_retries=0", "--allow-root"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                assert server.poll() is None, (tmp / "lab.log").read_text()[-3000:]
                time.sleep(0.5)
        yield base, token, work, names
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the notebook on screen


def _open(page, base: str, token: str, name: str, workspace: str) -> None:
    """Open `name` alone, in a workspace of its own (JupyterLab would restore other open tabs)."""
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{name}?reset&token={token}")
    page.wait_for_selector(f"{NOTEBOOK} .jp-Cell", timeout=120_000)
    page.wait_for_function("() => /\\| Idle/.test(document.querySelector('#jp-main-statusbar')?.innerText ?? '')",
                           timeout=120_000, polling=500)  # the kernel is up


def _menu(page, menu: str, item: str) -> None:
    page.click(f".lm-MenuBar-itemLabel:text-is('{menu}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


def _run_all(page) -> None:
    _menu(page, "Run", "Run All Cells")
    page.wait_for_function("""() => {
        const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
        const prompts = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
        return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
    }""", timeout=RUN_TIMEOUT_S * 1000, polling=1000)


def _figure_src(box) -> str:
    img = box.locator(".widget-output img").first
    img.wait_for(timeout=60_000)
    return img.get_attribute("src")


def _move_sliders(page) -> int:
    """Press ArrowRight on every slider; each must move one step and redraw its figure."""
    sliders = page.locator(f"{NOTEBOOK} .widget-slider")
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        box = slider.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")
        before, readout = _figure_src(box), slider.locator(".widget-readout").inner_text()
        slider.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("([el, old]) => { const img = el.querySelector('.widget-output img');"
                               " return img && img.getAttribute('src') !== old; }",
                               arg=[box.element_handle(), before], timeout=120_000)
        after = slider.locator(".widget-readout").inner_text()
        assert after != readout, f"slider {i} did not move: {readout} -> {after}"
    return sliders.count()


def _saved_figures(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    errors = [f"cell {n}: {o.get('ename')}: {o.get('evalue')}" for n, c in enumerate(nb.cells)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: error outputs {errors}"
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {}), \
        f"{path.name}: widget state not saved with the notebook"
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_notebooks_in_jupyterlab(lab):
    base, token, work, names = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for name in names:
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                _open(page, base, token, name, f"{Path(name).stem}-run")
                _run_all(page)
                moved = _move_sliders(page)
                assert moved or name.startswith("05"), f"{name}: no slider found"
                mtime = (work / name).stat().st_mtime_ns
                _menu(page, "File", "Save Notebook")
                page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=60_000)
                for _ in range(60):
                    if (work / name).stat().st_mtime_ns != mtime:
                        break
                    time.sleep(0.5)
                page.screenshot(path=SHOTS / f"{Path(name).stem}_run.png", full_page=True)
                figures = _saved_figures(work / name)
                assert figures, f"{name}: the saved notebook holds no figure"
                page.context.close()

                for session in _api(base, token, "/api/sessions"):  # a fresh kernel on reopening
                    _api(base, token, f"/api/sessions/{session['id']}", "DELETE")
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                _open(page, base, token, name, f"{Path(name).stem}-reopened")
                page.wait_for_timeout(3000)  # the widget manager restores the saved state
                explorers = page.locator(f"{NOTEBOOK} .widget-vbox")
                if explorers.count():
                    explorers.first.scroll_into_view_if_needed()
                text = page.locator(NOTEBOOK).inner_text()
                shown = page.locator(f"{NOTEBOOK} .jp-OutputArea-output img").count()
                page.screenshot(path=SHOTS / f"{Path(name).stem}_reopened.png", full_page=True)
                assert "Error displaying widget" not in text, f"{name}: dead widget after reopening"
                assert shown >= figures, f"{name}: {shown} figures shown after reopening, {figures} saved"
                page.context.close()
        finally:
            browser.close()
