"""Argument types and exit codes shared by the `hotline` subcommands each service registers."""

from __future__ import annotations

import argparse
import sys


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a --limit of 0 or -1 is a mistake, not "all")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def unmatched_ids(given: list[str] | None, matched: int, what: str) -> int:
    """The exit code of a replay by `--id`: 1, said on stderr, when some given ids matched nothing (a
    mistyped or already replayed id is not "done"); `what` names what they should have been."""
    wanted = len(set(given or []))
    if matched >= wanted:
        return 0
    print(f"hotline: error: {wanted - matched} of the {wanted} given id(s) are not {what}", file=sys.stderr)
    return 1
