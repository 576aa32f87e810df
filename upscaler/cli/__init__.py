"""The ``upscaler`` command.

Subcommands register themselves: the core ones live here; ``training``,
``export`` and ``server`` add theirs through the ``upscaler.commands`` entry
point group, so the core never imports them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points, version

from upscaler.cli.errors import CliError

__all__ = ["CliError", "main"]

Register = Callable[[argparse._SubParsersAction], None]


def _core_commands() -> list[Register]:
    from upscaler.cli import bench, evaluate, info, models, upscale, video

    return [upscale.register, video.register, models.register, info.register, evaluate.register, bench.register]


def _plugin_commands() -> list[Register]:
    registers = []
    for ep in entry_points(group="upscaler.commands"):
        try:
            registers.append(ep.load())
        except ImportError as exc:  # a broken plugin must not take the core CLI down
            logging.getLogger(__name__).warning("command %s unavailable: %s", ep.name, exc)
    return registers


def _version() -> str:
    try:
        return version("upscaler")
    except Exception:  # running from a source tree without metadata
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (naming ``-h``) in place of the whole usage block first."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered subcommand (their parsers are ``_Parser``s too)."""
    parser = _Parser(
        prog="upscaler",
        description="Real-time neural super-sampling: 4x and 2x image and frame upscaling.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("--version", action="version", version=f"upscaler {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in [*_core_commands(), *_plugin_commands()]:
        register(sub)
    return parser


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``command`` (``parser`` itself if there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command, parser)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbosity < 2:
        from upscaler.io import quiet_codec_logs

        quiet_codec_logs()  # bad files are reported once, as our own one-line errors


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse finds them at the top; the command's own help is what lists its options
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("upscaler: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # one line for people; -v shows the traceback
        if args.verbose:
            logging.getLogger("upscaler").exception("failed")
        message = str(exc) or type(exc).__name__
        print(f"upscaler: error: {message.splitlines()[0]}", file=sys.stderr)
        return 2
