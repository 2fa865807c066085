"""What `hotline` prints about Redis: where everything listens, what is wrong, never the password."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from tools.cli import _print_endpoints, main
from tools.runner import Stack


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


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cr3t-pw@127.0.0.1:1/0", "redis://:***@127.0.0.1:1/0"),  # nothing listens on port 1
        ("notaurl", "bad Redis URL"),  # no scheme: redis-py refuses to parse it
        ("redis://u:s3cr3t-pw@[::1", "(a malformed URL)"),  # urllib refuses it too
        ("redis://u:s3cr3t-pw@h:noport/0", "redis://u:***@h:noport/0"),
    ],
)
@pytest.mark.parametrize("command", [["dlq", "list"], ["outbound", "list"], ["init"]])
def test_an_unusable_redis_url_is_one_line_on_stderr_and_exit_1_never_a_traceback_or_the_password(
    url: str,
    shown: str,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    assert main(command) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("hotline: error: Redis at ")
    assert shown in err and "s3cr3t-pw" not in err


@pytest.mark.parametrize("command", [["dlq", "list"], ["outbound", "list"]])
@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_a_list_limit_below_one_is_a_usage_error_not_a_redis_error(
    command: list[str], limit: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(SystemExit) as exited:
        main([*command, "--limit", limit])
    assert exited.value.code == 2 and "argument --limit:" in capsys.readouterr().err


@pytest.mark.parametrize("tickets", ["0", "-5"])
def test_demo_refuses_a_ticket_count_below_one_before_starting_anything(
    tickets: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("tools.cli.cmd_demo", lambda args: 0)  # never start the stack here
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--tickets", tickets])
    assert exited.value.code == 2 and "argument --tickets:" in capsys.readouterr().err
