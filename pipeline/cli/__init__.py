"""The `fashion-ddpm` command line. Each command is a module of this package with `register(subparsers)`; commands
import the library, the library never imports them (as diffusers' `commands/`).

Errors a user can fix (a bad value, a missing model or dataset) end as one line, `error: ...`, exit status 2, before
any image is generated or any file written.
"""

from __future__ import annotations

import argparse
import sys

from . import clip, demo, distill, evaluate, generate, push, synthesize, train, visualize

COMMANDS = [generate, evaluate, clip, visualize, synthesize, train, distill, demo, push]


class CommandError(SystemExit):
    """Exit status 2 (as argparse's own errors), its message printed to stderr before; `str()` is the message."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fashion-ddpm", description="A class-conditional DDPM for Fashion-MNIST: "
                                     "generate, evaluate, score with CLIP, draw, synthesize datasets, train, distil, demo, push to the Hub.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def run_command(args: argparse.Namespace) -> None:
    """Runs a parsed command (`args.func`); an error a user can fix ends as one line and exit status 2."""
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:  # ModelError, bad settings, missing data: the message says it all
        print(f"error: {e}", file=sys.stderr)
        raise CommandError(f"error: {e}") from None


def main(argv: list[str] | None = None) -> None:
    """The console script `fashion-ddpm` (it exits with main()'s return value, so this returns None on success)."""
    run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
