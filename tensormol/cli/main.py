"""The ``tensormol`` command: thin shells over the public Python API.

Each subcommand lives in its own module and registers itself through an ``add_*`` function, so
the CLI imports heavy dependencies (Lightning, OpenMM, tblite) only for the subcommand that runs.
Errors the user can fix (bad paths, bad YAML keys, unknown elements) are printed as one message
and exit with status 2; ``--traceback`` shows the full trace for bug reports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser", "UserError"]


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


#: (module, function) pairs; each function takes the subparsers object and adds its commands.
_SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("tensormol.cli._info", "add_info_subcommand"),
    ("tensormol.cli._data", "add_data_subcommand"),
    ("tensormol.cli._train", "add_train_subcommands"),
    ("tensormol.cli._export", "add_export_subcommand"),
    ("tensormol.cli._md", "add_md_subcommand"),
    ("tensormol.cli._fe", "add_fe_subcommand"),
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand that is installed."""
    parser = argparse.ArgumentParser(
        prog="tensormol", description="Equivariant molecular machine learning."
    )
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, func_name in _SUBCOMMANDS:
        # Every listed module is part of the package: a missing one is a packaging bug and
        # fails here loudly. Subcommand modules import their heavy dependencies lazily.
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ImportError(
                f"tensormol: cannot import the subcommand module {module_name} ({err}); the "
                "installation is incomplete"
            ) from err
        getattr(module, func_name)(sub)
    return parser


# Exceptions whose message is meant for the user: printed without a stack trace.
_USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, ValueError, KeyError, TypeError,
                PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tensormol`` console script; returns the exit status."""
    # First, before anything imports torch: OpenMP threads then wait passively instead of
    # spinning on cores other processes need (the runtime reads this once, when it loads).
    from tensormol._threads import configure_openmp

    configure_openmp()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        result = args.func(args)
    except KeyboardInterrupt as err:
        # A command that stops cleanly says where (e.g. "stopped at step N; resume with
        # --resume"); otherwise just that it was interrupted.
        print(f"tensormol {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 130
    except _USER_ERRORS as err:
        if args.traceback:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"tensormol {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
