"""The ``scaling`` command (also ``python -m harness``).

Each sub-command lives in a module of :mod:`harness.commands` exposing ``register(subparsers)``;
adding a command means adding its module name to ``COMMAND_MODULES``. Handlers raise
:class:`harness.errors.UserError` for problems the user can fix; those print as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

COMMAND_MODULES = (
    "harness.commands.audit",
    "harness.commands.replicate",
    "harness.commands.fit",
    "harness.commands.isoflop",
    "harness.commands.data",
    "harness.commands.train",
    "harness.commands.recipe",
    "harness.commands.arena",
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="scaling",
        description="Replicate and audit neural scaling-law claims.",
        epilog="Run 'scaling COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"scaling-harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"scaling {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scaling {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
