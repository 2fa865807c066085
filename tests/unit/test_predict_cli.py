"""`hotline model predict` and `hotline model train-urgency`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.classifier.cli import main
from services.classifier.urgency_model import UrgencyModel

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "bench" / "data" / "urgency_eval.csv"
# The held-out parts of EVAL (bench/data/README.md): no model may be trained on them.
HELD_OUT = ["--exclude", "half=D", "--exclude", "half=E"]


@pytest.fixture
def calls(tmp_path: Path) -> Path:
    path = tmp_path / "calls.csv"
    path.write_text(
        "id,body\n"
        "1,燃气管道好像泄漏了，闻到很浓的煤气味\n"
        "2,路灯坏了好几天\n"
        "3,\n"
        "4,The gas company checked: there is no gas leak\n",
        encoding="utf-8",
    )
    return path


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.strip().splitlines()]


def test_one_json_line_per_row_then_a_summary(
    calls: Path, starter_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["model", "predict", "--data", str(calls), "--text-col", "body", "--model", str(starter_dir)]
    assert main([*args, "--json"]) == 0
    *rows, last = lines(capsys.readouterr().out)
    assert len(rows) == 4
    assert all(set(r) == {"category", "confidence", "top3", "urgency", "urgency_cue"} for r in rows)
    assert (rows[0]["urgency"], rows[0]["urgency_cue"]) == ("emergency", "combo:煤气+味")
    assert str(rows[3]["urgency_cue"]).startswith("negation:") or rows[3]["urgency"] != "emergency"
    top3 = rows[1]["top3"]
    assert isinstance(top3, list) and len(top3) == 3 and top3[0]["category"] == rows[1]["category"]
    summary = last["summary"]
    assert isinstance(summary, dict) and summary["rows"] == 4
    assert sum(summary["categories"].values()) == sum(summary["urgency"].values()) == 4
    assert summary["urgency"]["emergency"] == 1


def test_without_model_the_default_model_is_used(
    calls: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "data"))
    assert main(["model", "predict", "--data", str(calls), "--text-col", "body", "--json"]) == 0
    *rows, last = lines(capsys.readouterr().out)
    assert len(rows) == 4 and last["summary"]["rows"] == 4  # type: ignore[index]
    assert any(p.name.startswith("default-") for p in (tmp_path / "data" / "models").iterdir())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--text-col": "text"}, "no column 'text'"),
        ({"--data": "missing.csv"}, "no such file"),
        ({"--model": "no-model-here"}, "no-model-here"),
    ],
)
def test_a_bad_path_or_column_is_one_error_line_and_exit_2(
    calls: Path,
    tmp_path: Path,
    change: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    given = {"--data": str(calls), "--text-col": "body", "--model": str(tmp_path)}
    for flag, value in change.items():
        given[flag] = value if flag == "--text-col" else str(tmp_path / value)
    assert main(["model", "predict", *[x for kv in given.items() for x in kv], "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert len(out.err.strip().splitlines()) == 1 and message in out.err


def test_a_bad_urgency_model_is_one_error_line_and_exit_2(
    calls: Path, starter_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOTLINE_URGENCY_MODEL", str(calls))
    args = ["model", "predict", "--data", str(calls), "--text-col", "body", "--model", str(starter_dir)]
    assert main([*args, "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read the urgency model" in err[0]


def test_train_urgency_writes_a_model_the_worker_can_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "urgency.json"
    args = ["model", "train-urgency", "--data", str(EVAL), "--text-col", "text", "--label-col", "label"]
    assert main([*args, "--out", str(out)]) == 0
    assert UrgencyModel.load(out).trained_on == 1641
    assert main([*args, *HELD_OUT, "--out", str(out)]) == 0
    model = UrgencyModel.load(out)
    assert model.trained_on == 836  # the held-out parts D (370 rows) and E (435 rows) left out
    assert model.score("楼道里一股煤气味") > model.score("路灯坏了")
    assert main([*args[:-1], "kind", "--out", str(out), "--positive", "nothing"]) == 2
    assert "both" in capsys.readouterr().err


def test_train_urgency_exclude_needs_a_column_and_a_value(tmp_path: Path) -> None:
    args = ["model", "train-urgency", "--data", str(EVAL), "--text-col", "text", "--label-col", "label"]
    with pytest.raises(SystemExit):
        main([*args, "--exclude", "halfD", "--out", str(tmp_path / "u.json")])
    assert main([*args, "--exclude", "nosuchcolumn=D", "--out", str(tmp_path / "u.json")]) == 2


def test_train_urgency_reads_every_data_file(tmp_path: Path) -> None:
    more = tmp_path / "more.csv"
    more.write_text(
        "half,label,text\nT,emergency,楼道里全是煤气味\nT,other,路灯坏了\nD,other,不该用的一行\n", "utf-8"
    )
    out = tmp_path / "u.json"
    args = ["model", "train-urgency", "--data", str(EVAL), "--data", str(more), "--text-col", "text"]
    assert main([*args, "--label-col", "label", *HELD_OUT, "--out", str(out)]) == 0
    assert UrgencyModel.load(out).trained_on == 836 + 2
