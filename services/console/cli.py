"""`hotline console hash-password`: the scrypt hash to put in HOTLINE_CONSOLE_USERS for a password read
from the terminal (or stdin), so no password is ever written into the configuration."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from services.console.passwords import hash_password


def register(subparsers: Any) -> None:
    console = subparsers.add_parser("console", help="the web console's tools")
    sub = console.add_subparsers(dest="console_command", required=True)
    hashing = sub.add_parser(
        "hash-password", help="print the scrypt hash of a password (asked for, or one line of stdin)"
    )
    hashing.set_defaults(func=cmd_hash_password)


def cmd_hash_password(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("hotline console hash-password: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 10:
        print("hotline console hash-password: use at least 10 characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0
