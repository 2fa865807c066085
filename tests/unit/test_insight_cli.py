"""`hotline hotspots | forecast | chronic` on CSVs written here, bad input, the real dataset if present."""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.insight.cli import HOTSPOT_DATA, dataset_path
from tools.cli import main

COLUMNS = ["id", "user", "title", "text", "created_at", "likes", "location"]
DATASET = dataset_path(HOTSPOT_DATA)


def write(path: Path, rows: list[dict[str, object]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def sample(n_days: int = 70) -> list[dict[str, object]]:
    t0 = datetime(2019, 9, 2, 9)
    rows: list[dict[str, object]] = []
    titles = [
        "金桥小区附近工地夜间施工噪音扰民",
        "投诉金桥小区附近工地夜间施工噪音",
        "金桥小区旁工地夜间施工噪音严重",
    ]
    for i in range(12):  # the issue: 12 messages over two weeks, liked
        rows.append(
            {"id": f"n{i}", "user": f"u{i}", "title": titles[i % 3], "text": "晚上十点后还在施工，无法休息。",
             "created_at": (t0 + timedelta(days=40 + i)).isoformat(), "likes": 5, "location": "A2区"}
        )  # fmt: skip
    rng = random.Random(7)
    pool = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]  # unrelated messages share no words
    for d in range(n_days):  # background: a few unrelated messages a day
        for k in range(3 if d % 7 < 5 else 1):
            rows.append(
                {"id": f"b{d}-{k}", "user": f"v{d}{k}", "title": "".join(rng.choices(pool, k=12)),
                 "text": "请处理。",
                 "created_at": (t0 + timedelta(days=d, hours=k)).isoformat(), "likes": 0, "location": "A市"}
            )  # fmt: skip
    return rows


def test_hotspots_prints_the_top_issues_as_a_json_array_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(tmp_path / "m.csv", sample())
    assert main(["hotspots", "--data", str(data), "--top", "3", "--json"]) == 0
    out = capsys.readouterr()
    issues = json.loads(out.out.strip().splitlines()[-1])
    assert isinstance(issues, list) and 1 <= len(issues) <= 3
    top = issues[0]
    assert {"label", "heat", "start", "end", "message_ids"} <= set(top)
    assert sorted(top["message_ids"]) == sorted(f"n{i}" for i in range(12))
    assert "金桥小区" in top["label"] and top["start"] < top["end"]
    assert "clusters" in out.err, "progress goes to stderr"


def test_hotspots_without_likes_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path / "m.csv", sample(), columns=["id", "title", "text", "created_at", "location"])
    assert main(["hotspots", "--data", str(data), "--top", "1", "--json"]) == 0
    [issue] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(issue["message_ids"]) == 12


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "absent.csv", "no such file"),
        (
            lambda p: write(p / "x.csv", [], columns=["id", "text"]),
            "missing column(s) title, created_at, location",
        ),
        (
            lambda p: write(p / "y.csv", [{"id": 1, "title": "t", "text": "x", "created_at": "yesterday"}]),
            "y.csv:2: created_at 'yesterday' is not an ISO time",
        ),
    ],
)
def test_bad_input_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    assert main(["hotspots", "--data", str(path), "--json"]) == 2
    out = capsys.readouterr()
    assert message in out.err and out.out == ""


def test_forecast_and_chronic_on_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path / "m.csv", sample())
    assert main(["forecast", "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(result["all"]["point"]) == 7 and result["all"]["backtest"]["origins"] >= 1
    assert main(["chronic", "--data", str(data), "--month", "2019-10", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out.strip().splitlines()[-1]), list)
    assert main(["chronic", "--data", str(data), "--month", "October"]) == 2


@pytest.mark.skipif(not DATASET.is_file(), reason="Teddy Cup 2020 C hotspot data not present")
def test_hotspots_on_the_real_dataset_has_the_promised_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hotspots", "--data", str(DATASET), "--top", "5", "--json"]) == 0
    issues = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(issues) == 5
    for issue in issues:
        assert isinstance(issue["label"], str) and issue["label"]
        assert isinstance(issue["heat"], float) and issue["heat"] > 0
        assert datetime.fromisoformat(issue["start"]) <= datetime.fromisoformat(issue["end"])
        assert len(issue["message_ids"]) >= 2
    assert [i["heat"] for i in issues] == sorted((i["heat"] for i in issues), reverse=True)


@pytest.mark.parametrize(("option", "value"), [("--top", "-1"), ("--top", "0"), ("--weeks", "0")])
def test_chronic_refuses_a_count_below_one_instead_of_slicing_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    data = write(tmp_path / "m.csv", sample(30))
    with pytest.raises(SystemExit) as exited:
        main(["chronic", "--data", str(data), "--month", "2019-09", option, value])
    assert (
        exited.value.code == 2 and f"argument {option}: {value} is not at least 1" in capsys.readouterr().err
    )
