"""The AsyncAPI document is generated from the code: every stream, event and consumer group is in it."""

from __future__ import annotations

import json

import pytest

from shared import streams
from shared.events import STREAM_EVENTS
from tools.asyncapi import PRODUCERS, document
from tools.cli import main


def test_every_stream_is_a_channel_with_its_event_schema() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(streams.ALL_STREAMS)
    schemas = doc["components"]["schemas"]
    for model in STREAM_EVENTS.values():
        assert {"event_id", "ticket_id", "occurred_at", "version"} <= set(
            schemas[model.__name__]["properties"]
        )


def test_operations_name_every_consumer_group_and_producer() -> None:
    ops = document()["operations"]
    for stream, groups in streams.GROUPS.items():
        channel = stream.replace(".", "_")
        for group in groups:
            assert ops[f"{group}_receives_{channel}"]["action"] == "receive"
    assert set(PRODUCERS) == set(streams.ALL_STREAMS), "every stream has a producer"


def test_every_reference_resolves() -> None:
    doc = document()
    refs = set(_refs(doc))
    assert len(refs) > len(STREAM_EVENTS)
    for ref in refs:
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # a dangling reference raises KeyError here


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_the_cli_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["asyncapi"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "Hotline events"
