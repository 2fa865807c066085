"""A routing table whose departments all have webhooks to one recording server (for the fault suite)."""

from __future__ import annotations

from pathlib import Path

import yaml

from shared.settings import DATA_DIR

SECRET_ENV = "HOTLINE_TEST_DEPARTMENT_SECRET"
SECRET = "whsec_ZGVwYXJ0bWVudC1zZWNyZXQ="


def routing_with_webhooks(directory: Path, base_url: str) -> dict[str, str]:
    """Write the default routing with a webhook per department; returns the env a Stack needs for it."""
    table = yaml.safe_load((DATA_DIR / "routing.yaml").read_text(encoding="utf-8"))
    for department in table["departments"]:
        department["webhook_url"] = f"{base_url}/departments/{department['id']}"
        department["token_env"] = SECRET_ENV
    path = directory / "routing.yaml"
    path.write_text(yaml.safe_dump(table, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return {
        "HOTLINE_ROUTING_PATH": str(path),
        SECRET_ENV: SECRET,
        "HOTLINE_OUTBOUND_MAX_ATTEMPTS": "30",
        "HOTLINE_OUTBOUND_BACKOFF_BASE": "0.3",
        "HOTLINE_OUTBOUND_BACKOFF_CAP": "2",
        "HOTLINE_OUTBOUND_TIMEOUT": "3",
    }
