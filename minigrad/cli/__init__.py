"""The ``minigrad`` command (also ``python -m minigrad``).

- ``minigrad demo``: train a character-level RNN language model (``--cell rnn|lstm|gru``) on real text and
  watch it learn.
- ``minigrad verify``: compare minigrad's RNN, LSTM and GRU with PyTorch's, forward and every gradient, over a
  grid.
- ``minigrad bench``: the benchmark suite's minigrad-versus-PyTorch ratio table.
- ``minigrad info``: what this build runs on (kernels, ISA, OpenMP, threads, numpy's BLAS).

Bad arguments give one line on stderr and exit status 2 (no command at all: the usage line, then that line),
as does running out of memory (sizes too large for this machine); ``verify`` exits 1 when a comparison fails.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from minigrad.cli import bench, demo, info, verify
from minigrad.cli.common import CLIError

__all__ = ["main"]

_COMMANDS = {"demo": demo, "verify": verify, "bench": bench, "info": info}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        # One line instead of argparse's usage dump; main() prints it and exits 2.
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="minigrad", description="minigrad's command-line tools: train the demo model, "
                     "check against PyTorch, benchmark, describe the build.",
                     epilog="Start with `minigrad demo` (about a minute); `minigrad COMMAND --help` for "
                     "options.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in _COMMANDS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.__doc__,
                                  epilog=getattr(module, "EXAMPLES", None),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command == "bench":  # the benchmark runner's own options pass through
            args.extra = [a for a in extra if a != "--"]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command is None:
            print(parser.format_usage(), end="", file=sys.stderr)
            parser.error(f"a command is required: {', '.join(_COMMANDS)}")
        return args.run(args)
    except CLIError as e:
        print(f"minigrad: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:
        # Sizes this machine cannot hold: numpy says how much it tried to allocate.
        print(f"minigrad: error: out of memory: {e or 'an allocation failed'}; try smaller sizes",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nminigrad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`minigrad demo | head`): stop quietly.  Point stdout at devnull so that
        # Python's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
