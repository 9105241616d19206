"""Command line: ``python -m course_lib <command>`` (or the ``course-lib`` script), each with ``--help``.

    python -m course_lib pretrain --preset tiny --out runs/tiny    # 2-4 min on a 2-core CPU
    python -m course_lib generate --ckpt runs/tiny --prompt 今天
    torchrun --nproc_per_node=2 -m course_lib pretrain --preset tiny --batch-size 8

One module per group of commands; each has ``add_parsers(subparsers)`` and its ``cmd_*`` functions.
Parsing imports no torch (``--help`` answers at once); the work imports what it needs. Bad input
(a missing file, an unknown corpus or preset, ``--lr 0``, ...) prints one line starting with
``error:`` on stderr and exits with status 2; nothing already written is touched.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from typing import List, Optional

from . import chat, evaluate, export, generate, tokenize, training
from .common import (EXIT_BAD_INPUT, EXIT_CODES_HELP, EXIT_DIVERGED, EXIT_OK, EXIT_SIGINT, CLIError,
                     HelpFormatter, one_line)
from .training import PRESET_DEFAULTS, _nearest_preset   # noqa: F401  (kept importable from course_lib.cli)

# the order of the commands in --help
COMMAND_MODULES = (training, generate, chat, evaluate, tokenize, export)


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = _Parser(prog="python -m course_lib",
                                     description="Train, sample, chat with, evaluate and export course_lib models.",
                                     formatter_class=HelpFormatter,
                                     epilog="Run 'python -m course_lib <command> --help' for a command's options.\n\n"
                                            + EXIT_CODES_HELP)
    parser.add_argument("--version", action="version", version=f"course_lib {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_SubParser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    parser.subcommands = sub.choices                # name -> parser (a run file re-parses with new defaults)
    return parser


class _Parser(argparse.ArgumentParser):
    """Bad arguments give the house error: one line, naming the problem and where the options are."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see '{self.prog} --help')\n")


class _SubParser(_Parser):
    """A subcommand's parser: defaults shown in --help, the exit codes after its options."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        description = kwargs.get("description")
        if description and "\n" not in description:       # one paragraph: wrap it (laid-out text stays)
            kwargs["description"] = textwrap.fill(description, 88)
        epilog = kwargs.get("epilog")
        kwargs["epilog"] = EXIT_CODES_HELP if not epilog else epilog + "\n\n" + EXIT_CODES_HELP
        super().__init__(*args, **kwargs)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (see ``EXIT_CODES_HELP``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:              # --help, --version (0) or a bad argument (2): a status, not an exception
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    args.argv = list(sys.argv[1:] if argv is None else argv)
    from ..train import TrainingDiverged          # after parsing: --help never imports torch

    try:
        if getattr(args, "config", None):
            from .model_options import apply_run_file
            args = apply_run_file(parser, args.argv, args)
            args.argv = list(sys.argv[1:] if argv is None else argv)
        return args.func(args) or EXIT_OK
    except TrainingDiverged as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            PermissionError, ImportError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:                  # stdout's reader went away after the work was done
        from ..progress import stdout_gone
        stdout_gone()
        return EXIT_OK


__all__ = ["main", "build_parser", "CLIError", "PRESET_DEFAULTS", "EXIT_BAD_INPUT"]
