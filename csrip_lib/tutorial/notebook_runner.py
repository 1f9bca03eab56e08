"""Run the tutorial notebooks headless: `csrip demo` (= `make demo`) and the notebook tests.

`csrip demo` runs the pretrained tour by default (PRESET = "pretrained": notebooks 03, 05 and 06 load
the shipped models of checkpoints/ instead of training, see csrip_lib.models.zoo); `csrip demo --preset
quick` runs the tour that trains tiny models on the CPU while you watch.

Notebooks execute with nbclient in a fresh `python3` kernel, with cwd = the notebook's folder
(as in Jupyter), connected over IPC sockets in a private temporary folder on POSIX systems (the kernel
is local; over TCP ipykernel >= 7 logs "Kernel is running over TCP without encryption" for every
notebook), TCP elsewhere. Parameters are injected papermill-style: a cell tagged "injected-parameters" is
inserted after the cell tagged "parameters", so the notebook's own defaults stay visible and the
override is explicit. Executed copies (outputs and tracebacks included) go to build/, csrip's own folder,
replacing earlier copies; a folder chosen with `--out` keeps its notebooks unless `--force`, and can never
be the folder of the source notebooks (executing into it would replace them).
`csrip demo --record results` also writes the per-notebook times as result `tour-<preset>` (core.results:
wall and kernel CPU seconds per notebook, with the command, commit, machine, date and the load average
before the run), which README.md renders, so a tour time is never typed.
`csrip demo` also writes each executed copy as HTML (nbconvert, figures embedded) to build/html/, readable
without Jupyter. While a notebook runs, a bar counts its code cells and shows the latest line the running
cell printed (its own progress bars), so no stretch of the tour is silent.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import tempfile
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import nbformat
import pandas as pd

from ..core import results
from ..core.config import figures_dir, project_root
from ..core.console import CSRIPError, command_line, positive_int, tqdm
from ..core.outputs import check_dir, check_outputs, write_output
from ..data.faces import resolve_data

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
CELL_TIMEOUT_S = 1200  # one cell; quick mode needs a small fraction of it


def find_notebooks(folder: str | Path | None = None, only: str | None = None) -> list[Path]:
    """notebooks/NN_*.ipynb in order; `only` keeps names containing it (e.g. "03" or "ssim")."""
    folder = Path(folder) if folder else project_root() / "notebooks"
    found = sorted(folder.glob(NOTEBOOK_GLOB))
    return [p for p in found if only is None or only in p.name]


def inject_parameters(nb: nbformat.NotebookNode, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """Insert `NAME = value` assignments after the "parameters" cell (at the top if none)."""
    if not parameters:
        return nb
    source = "# Parameters injected by csrip_lib.tutorial.notebook_runner\n" + "".join(
        f"{name} = {value!r}\n" for name, value in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)
    return nb


def _error_of(nb: nbformat.NotebookNode) -> str:
    """"cell N: Ename: value" of the first error output of an executed notebook ("" if none)."""
    for n, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {n} ({cell.source.splitlines()[0][:60] if cell.source else ''!r}): " \
                       f"{out.get('ename')}: {out.get('evalue')}"
    return ""


def last_line(text: str, width: int = 60) -> str:
    """The last non-empty line of a stream chunk, a progress bar's latest state ('\\r' ends a line too)."""
    lines = [s.strip() for s in text.replace("\r", "\n").split("\n")]
    line = next((s for s in reversed(lines) if s), "")
    return line if len(line) <= width else line[:width - 3] + "..."


def _client(nb: nbformat.NotebookNode, progress: Callable[[str], None] | None, **kwargs):
    """An nbclient NotebookClient that also hands `progress` the latest line of every text output."""
    from nbclient import NotebookClient  # optional (the notebooks extra): only `csrip demo` runs kernels

    class Client(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            if progress is not None and msg["msg_type"] == "stream":
                line = last_line(msg["content"].get("text", ""))
                if line:
                    progress(line)
            return super().output(outs, msg, display_id, cell_index)

    return Client(nb, **kwargs)


def run_notebook(path: str | Path, out_dir: str | Path | None = None,
                 parameters: dict[str, Any] | None = None, timeout: int = CELL_TIMEOUT_S,
                 kernel_name: str = "python3", cwd: str | Path | None = None, desc: str | None = None) -> Path:
    """Execute a notebook top to bottom; write the executed copy to out_dir (default build/).

    With `desc`, a progress bar of that name counts the code cells (cell k of n) and shows the latest
    line the running cell printed. Raises CSRIPError naming the failing cell and the executed copy that
    holds the traceback. The kernel inherits this process's environment (CSRIP_DATA, CSRIP_FIGURES,
    CSRIP_RUNS).
    """
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    out_dir = Path(out_dir) if out_dir else project_root() / "build"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / path.name
    nb = inject_parameters(nbformat.read(path, as_version=4), parameters or {})
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    bar = tqdm(total=len(code), desc=desc, unit="cell", disable=desc is None)
    try:
        with bar, tempfile.TemporaryDirectory(prefix="csrip-kernel-") as sockets:
            client = _client(nb, bar.set_postfix_str if desc else None, timeout=timeout, kernel_name=kernel_name,
                             coalesce_streams=True,
                             resources={"metadata": {"path": str(Path(cwd) if cwd else path.parent)}},
                             config=_kernel_transport(Path(sockets)),
                             on_cell_executed=lambda cell, cell_index, execute_reply: bar.update())
            try:
                _execute(client)
            except BaseException as e:
                if not isinstance(e, Exception):  # interrupted or terminated: keep what ran
                    _save(nb, out)
                raise
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
        _save(nb, out)
        if getattr(e, "ename", None) == "KeyboardInterrupt":  # the kernel was interrupted (Ctrl-C reached it
            raise KeyboardInterrupt from e                     # before this process saw one): not a failure
        where = _error_of(nb) or f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise CSRIPError(f"notebook {path.name} failed in {where}\n  executed copy with the "
                         f"traceback: {out}") from e
    _save(nb, out)
    return out


def _execute(client) -> None:
    """`client.execute()`, in a helper thread, so that Ctrl-C, SIGTERM and SIGHUP reach this (main) thread:
    the running cell is interrupted (SIGINT to the kernel's process group), nbclient ends the run and shuts
    the kernel down the normal way, and then the signal goes to this process's own handler (`csrip`
    prints one line: interrupted, or terminated). In the main thread nbclient would take those signals
    itself and shut the kernel down under the running cell: dozens of lines of ZMQ tracebacks. A second
    signal goes to the handler at once (the kernel then ends with this process: it polls its parent)."""
    if threading.current_thread() is not threading.main_thread():
        client.execute()
        return
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    caught: list[int] = []
    sent: list[int] = []
    failed: list[BaseException] = []
    previous = {sig: signal.getsignal(sig) for sig in sigs}

    def interrupt_kernel() -> None:
        pgid = getattr(getattr(getattr(client, "km", None), "provisioner", None), "pgid", None)
        if caught and not sent and pgid:
            sent.append(pgid)
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGINT)

    def on_signal(signum: int, frame) -> None:
        if caught:
            _deliver(signum, previous[signum])
        caught.append(signum)
        interrupt_kernel()

    def work() -> None:
        try:
            client.execute()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            failed.append(e)

    worker = threading.Thread(target=work, name="notebook", daemon=True)
    for sig in sigs:
        signal.signal(sig, on_signal)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
            interrupt_kernel()  # a signal that came while the kernel was starting
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        _deliver(caught[0], previous[caught[0]])
    if failed:
        raise failed[0]


def _deliver(signum: int, handler) -> None:
    """Run this process's handler of `signum` now (Python's raises KeyboardInterrupt; `csrip`'s, Terminated)."""
    if callable(handler):
        handler(signum, None)
    elif handler != signal.SIG_IGN:
        raise KeyboardInterrupt


def _save(nb: nbformat.NotebookNode, out: Path) -> None:
    """The executed copy, atomically (`outputs.write_output`; `run` checked the names before any kernel)."""
    write_output(out, nbformat.writes(nb).encode(), force=True)


def check_out(out: str | Path | None, notebooks: list[Path], force: bool) -> Path:
    """The folder for the executed copies: build/ (csrip's, copies replaced), or `out`, which must not be
    the source notebooks' folder and whose same-named notebooks are replaced only with `force`."""
    folder = check_dir(out or project_root() / "build")
    sources = {p.parent.resolve() for p in notebooks}
    if folder.resolve() in sources:
        raise CSRIPError(f"--out {folder} is the folder of the source notebooks: their executed copies would "
                         "replace them; choose another folder (default: build/)")
    if out is not None:
        check_outputs([folder / p.name for p in notebooks], force)
    return folder


def write_html(notebook: str | Path, out_dir: str | Path) -> Path:
    """An executed notebook as out_dir/NN_name.html (nbconvert's lab template; figures are in the page),
    written as every output is (`outputs.write_output`: atomically, never through a link)."""
    from nbconvert import HTMLExporter  # optional, like nbclient

    notebook, out_dir = Path(notebook), Path(out_dir)
    body, _ = HTMLExporter(embed_images=True).from_notebook_node(nbformat.read(notebook, as_version=4))
    out = out_dir / f"{notebook.stem}.html"
    write_output(out, body.encode("utf-8"), force=True)
    return out


def _kernel_transport(folder: Path):
    """jupyter_client settings: IPC sockets under `folder` where the OS has them (POSIX), else TCP."""
    from traitlets.config import Config
    if os.name != "posix":
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": str(folder / "kernel")}})


def _kernel_cpu_s() -> float:
    """User + system CPU seconds of this process's finished children (each notebook's kernel is
    shut down and reaped when its run ends)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pngs(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.glob("*.png")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="face folder (default: $CSRIP_DATA, data/lfw-deepfunneled, "
                        "else a generated synthetic set)")
    parser.add_argument("--preset", default="pretrained", choices=["pretrained", "quick", "tiny", "small", "paper"],
                        help="PRESET injected into every notebook (default: pretrained, the shipped models of "
                             "checkpoints/; quick: train tiny models, a few minutes on a CPU)")
    parser.add_argument("--only", metavar="TEXT", help="run only notebooks whose name contains TEXT")
    parser.add_argument("--out", default=None, help="folder for the executed copies (default: build/)")
    parser.add_argument("--force", action="store_true", help="replace executed copies already in --out")
    parser.add_argument("--timeout", type=positive_int, default=CELL_TIMEOUT_S, help="seconds per cell")
    parser.add_argument("--record", metavar="DIR", default=None, help="also write the per-notebook times as result "
                        "tour-PRESET into DIR (results: the README renders them), replacing an earlier one")


def record_times(folder: str | Path, preset: str, done: list[tuple[str, float, float]], started: float,
                 git: dict[str, Any], load: tuple[float, float, float]) -> list[Path]:
    """Result `tour-<preset>`: each notebook's wall and kernel CPU seconds, with the command, commit, machine,
    date and the 1/5/15-minute load average before the run (a busy machine inflates wall time, not CPU time)."""
    table = pd.DataFrame([{"notebook": name, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
                          for name, wall, cpu in done])
    prov = results.provenance(command_line(), started, git, preset=preset, load_average=[round(x, 2) for x in load])
    return results.write(folder, f"tour-{preset}", {"": table}, prov, force=True)


def run(args: argparse.Namespace) -> int:
    nbs = find_notebooks(only=args.only)
    if not nbs:
        raise CSRIPError(f"no notebooks matching {NOTEBOOK_GLOB!r}"
                         f"{f' and {args.only!r}' if args.only else ''} in {project_root() / 'notebooks'}")
    out_dir = check_out(args.out, nbs, args.force)
    check_dir(figures_dir(create=False), "figures folder")
    data = resolve_data(args.data)  # announced once here; a synthetic set is made once, here
    parameters = {"PRESET": args.preset, **({"DATA": str(data)} if args.data else {})}
    figs = figures_dir()
    before = _pngs(figs)
    html_dir = out_dir / "html"
    done = []
    started, git, load = time.time(), results.git_state(), os.getloadavg()
    for k, nb in enumerate(nbs, 1):
        start, cpu = time.perf_counter(), _kernel_cpu_s()
        out = run_notebook(nb, out_dir, parameters, timeout=args.timeout, desc=f"[{k}/{len(nbs)}] {nb.stem}")
        done.append((nb.name, time.perf_counter() - start, _kernel_cpu_s() - cpu, write_html(out, html_dir)))
    written = sorted(p for p, t in _pngs(figs).items() if before.get(p) != t)
    print(f"\nexecuted notebooks (PRESET {args.preset!r}; wall time and the kernel's CPU time, both longer on a "
          f"busy machine; {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the end):")
    for name, seconds, cpu, html in done:
        print(f"  {name:<40} {seconds:6.0f} s wall {cpu:6.0f} s CPU  -> {html}")
    print(f"  {'all':<40} {sum(d[1] for d in done):6.0f} s wall {sum(d[2] for d in done):6.0f} s CPU")
    print(f"figures written to {figs}: {len(written)}")
    for p in written:
        print(f"  {p.name}")
    if args.record:
        for path in record_times(args.record, args.preset, [d[:3] for d in done], started, git, load):
            print(f"wrote {path}")
    print(f"\nread the tour in a browser: {html_dir}/ (open {done[0][3].name} first); the executed notebooks "
          f"are in {out_dir}/")
    return 0
