"""What `hotline up` prints: where everything listens, never the Redis password."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from shared.cli import _print_endpoints
from shared.runner import Stack


def test_the_printed_redis_url_hides_its_password() -> None:
    out = StringIO()
    stack = Stack(redis_url="redis://:s3cr3t-pw@redis.internal:6379/0", base_port=18000)
    _print_endpoints(Console(file=out, width=200), stack)
    printed = out.getvalue()
    assert "s3cr3t-pw" not in printed
    assert "redis://:***@redis.internal:6379/0" in printed


def test_a_user_name_is_kept_and_its_password_hidden() -> None:
    out = StringIO()
    stack = Stack(redis_url="rediss://hotline:s3cr3t-pw@redis.internal:6380/1", base_port=18000)
    _print_endpoints(Console(file=out, width=200), stack)
    assert "rediss://hotline:***@redis.internal:6380/1" in out.getvalue()
