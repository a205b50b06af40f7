"""Command-line helpers: bad input exits with code 2 and one line that says what to fix."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, NoReturn

__all__ = ["UsageError", "ArgumentParser", "fail", "entry_point"]


class UsageError(ValueError):
    """Bad user input (flags, paths, a conflicting run directory). Library code raises it;
    an `entry_point` turns it into a one-line message and exit code 2."""


def fail(message: str) -> NoReturn:
    """Print `error: <message>` on one line to stderr and exit with code 2 (no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), still exit code 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def entry_point(main: Callable) -> Callable:
    """Decorate a script's `main(argv)`: a UsageError becomes `fail(message)` (exit 2, one line)."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UsageError as err:
            fail(str(err))

    return wrapper
