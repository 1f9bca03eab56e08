"""Command line `csrip` (also `python -m csrip_lib`): one subcommand per module.

Each command's module defines `add_arguments(parser)` and `run(args) -> int | None`; it is imported
only when its command runs, so `csrip --help` is instant. User errors (`CSRIPError`), usage errors
(a bad option or number, see `argtypes`) and file-system errors (`OSError`: unreadable, unwritable,
full disk, symlink loop) print one line, "csrip <command>: error: ...", and exit with status 2.
Warnings print one line each, "csrip <command>: warning: ...", not Python's two-line form with the
source line. File names that are not valid UTF-8 (decoded by Python with surrogate escapes) print with
a backslash escape for each such byte, as on stderr, instead of failing the print.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .core.console import CSRIPError, describe_os_error, tqdm

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("csrip_lib.data.download", "download and verify LFW deep-funneled"),
    "demo": ("csrip_lib.tutorial.notebook_runner", "execute the notebooks into build/ (default: the pretrained tour, "
                                              "shipped models; --preset quick trains tiny models)"),
    "train-recognizers": ("csrip_lib.training.recognizers", "train the three SqueezeNet identity priors"),
    "train-sr": ("csrip_lib.training.sr", "train the cascaded SR network with Eq. 4"),
    "train-competitor": ("csrip_lib.training.competitors", "train a Table 1 competitor (SRCNN, VDSR, lp, SRGAN, URDGN, NBSRF-like)"),
    "ablation": ("csrip_lib.training.ablation", "run the Table 2 ablation / Tables 3-4 experiment"),
    "evaluate": ("csrip_lib.evaluation.evaluate", "PSNR/SSIM/identity metrics per image, with bicubic"),
    "hallucinate": ("csrip_lib.evaluation.hallucinate", "8x face hallucination of any photo(s)"),
    "figures": ("csrip_lib.tutorial.figures", "regenerate the paper's figures into figures/"),
    "reproduce": ("csrip_lib.reproduce", "measure a published result into results/ (table1, table2, default-model) "
                  "and render README.md / docs/ / MODEL_CARD.md from them"),
    "export": ("csrip_lib.models.zoo", "export a trained run as a shipped model into checkpoints/"),
}


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (the full usage is one `--help` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line_warnings(command: str) -> None:
    """Show every warning of this process as one line on stderr (between progress bars)."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        tqdm.write(f"csrip {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)
    warnings.showwarning = show


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog="csrip", description="C-SRIP face hallucination: data, training, evaluation, figures.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")  # as stderr: a non-UTF-8 name prints as \udcXX
    with warnings.catch_warnings():  # restores Python's warning display when the command returns
        one_line_warnings(args.command)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except CSRIPError as e:
        print(f"csrip {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # the one place file-system errors become a message instead of a traceback
        print(f"csrip {args.command}: error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"csrip {args.command}: interrupted", file=sys.stderr)
        return 130
