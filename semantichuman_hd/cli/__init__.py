"""The ``semantichuman-hd`` command line.

Each command group lives in its own module that exposes ``register(subparsers)``; the module adds its
sub-commands and sets ``func`` on each parser, a callable taking the parsed ``argparse.Namespace`` and
returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..host_memory import reuse_freed_host_memory

COMMAND_MODULES: tuple[str, ...] = ("body", "data", "generate", "export", "evaluate")
"""Modules of :mod:`semantichuman_hd.cli` whose ``register`` adds sub-commands, in help order."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semantichuman-hd",
        description="SemanticHuman-HD: semantically disentangled 3D human generation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    reuse_freed_host_memory()
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"semantichuman-hd {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system failed mid-run (disk full, a folder removed, ...)
        print(f"semantichuman-hd {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"semantichuman-hd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
