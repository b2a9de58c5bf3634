"""`nnunet-stroke` command line.

Every module in ``nnunet_stroke.commands`` is one sub-command: it defines ``add_parser(subparsers)``,
which registers its parser and sets ``func`` (called with the parsed arguments, returning an exit code).
Command modules import heavy libraries (torch, nnunetv2) inside ``func`` so ``-h`` stays fast.
A command that wraps a stock nnU-Net entry point sets ``passthrough=True``: every argument it does not
know (``-h`` included) is handed to the stock command in ``stock_args``.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from nnunet_stroke import __version__, commands
from nnunet_stroke.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnunet-stroke", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module_info.name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.stock_args = [*unknown, *args.stock_args]
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"nnunet-stroke {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
