"""``tailface`` command line. Every module in this package (except this one) that defines
``register(subparsers)`` contributes one subcommand; its parser sets ``func=handler(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import tailface
import tailface.cli
from tailface.errors import TailfaceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tailface", description=tailface.__doc__)
    parser.add_argument("--version", action="version", version=f"tailface {tailface.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(tailface.cli.__path__), key=lambda m: m.name):
        if info.name in ("main", "__main__") or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"tailface.cli.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TailfaceError as exc:
        print(f"tailface {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"tailface {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
