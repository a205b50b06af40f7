"""Command-line helpers: bad input exits with code 2 and one line that says what to fix."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, NoReturn

__all__ = ["UsageError", "Diverged", "ArgumentParser", "fail", "entry_point"]


class UsageError(ValueError):
    """Bad user input (flags, paths, a conflicting run directory). Library code raises it;
    an `entry_point` turns it into a one-line message and exit code 2."""


class Diverged(RuntimeError):
    """Training produced a non-finite loss. The message says where, that the last good checkpoint is
    kept and what to change; an `entry_point` prints it on one line and exits with code 1."""


def fail(message: str) -> NoReturn:
    """Print `error: <message>` on one line to stderr and exit with code 2 (no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), still exit code 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def entry_point(main: Callable) -> Callable:
    """Decorate a script's `main(argv)`: a UsageError becomes `fail(message)` (exit 2, one line);
    `Diverged` becomes `error: training diverged ...` on one line and exit code 1."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UsageError as err:
            fail(str(err))
        except Diverged as err:
            print(f"error: training diverged: {err}", file=sys.stderr)
            raise SystemExit(1) from None

    return wrapper
