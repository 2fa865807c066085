from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.classifier.cli import main
from services.classifier.starter import STARTER_CSV

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    corrections = out.parent / "corrections.jsonl"
    corrections.write_text(
        json.dumps({"text": "井盖被偷了，晚上很危险", "category": "urban_construction"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    args = ["model", "train", "--data", str(STARTER_CSV), "--text-col", "text", "--label-col", "category"]
    assert main([*args, "--out", str(out), "--corrections", str(corrections)]) == 0
    return out


def test_train_writes_a_model_directory(trained: Path) -> None:
    assert {"model.json", "model.npz", "vocab.json", "report.json", "taxonomy.yaml"} <= {
        p.name for p in trained.iterdir()
    }
    assert json.loads((trained / "report.json").read_text(encoding="utf-8"))["n"] == 241


def test_evaluate_json_last_line(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["model", "evaluate", "--model", str(trained), "--data", str(STARTER_CSV)]
    assert main([*args, "--text-col", "text", "--label-col", "category", "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert {"n", "accuracy", "macro_f1", "per_class"} <= set(result)
    assert result["n"] == 240
    assert set(result["per_class"]["utilities"]) == {"precision", "recall", "f1", "support"}


def test_evaluate_maps_label_aliases_to_codes(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "zh.csv"
    data.write_text(
        "text,label\n小区停水三天了,水电气暖\n公司拖欠工资三个月,劳动和社会保障\n", encoding="utf-8"
    )
    assert (
        main(
            [
                "model",
                "evaluate",
                "--model",
                str(trained),
                "--data",
                str(data),
                "--text-col",
                "text",
                "--label-col",
                "label",
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["per_class"]) <= {
        "utilities",
        "labour_social_security",
        "urban_construction",
        "environment",
        "transport",
        "education_culture",
        "commerce_tourism",
        "health",
        "public_safety",
        "housing_property",
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--text-col", "nope", "--label-col", "category"], "no column 'nope'"),
        (["--text-col", "text", "--label-col", "category", "--data", "/nonexistent.csv"], "no such file"),
    ],
)
def test_bad_input_exits_2(
    trained: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["model", "evaluate", "--model", str(trained), "--data", str(STARTER_CSV), *extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_train_rejects_empty_data_and_unknown_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("text,category\n", encoding="utf-8")
    common = ["--text-col", "text", "--label-col", "category", "--out", str(tmp_path / "m")]
    assert main(["model", "train", "--data", str(empty), *common]) == 2
    assert "no rows" in capsys.readouterr().err
    odd = tmp_path / "odd.csv"
    odd.write_text("text,category\na,x\nb,x\nc,y\nd,y\n", encoding="utf-8")
    assert main(["model", "train", "--data", str(odd), *common]) == 2
    assert "--raw-labels" in capsys.readouterr().err


def test_standalone_module_reports_bad_column_without_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.classifier.cli",
            "model",
            "train",
            "--data",
            str(STARTER_CSV),
            "--text-col",
            "body",
            "--label-col",
            "category",
            "--out",
            str(tmp_path / "m"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "no column 'body'" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_into_an_unwritable_out_is_one_error_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = {"water": "水管 漏水 停水 水压 水表 自来水", "noise": "噪音 施工 深夜 广场舞 喇叭 扰民"}
    rows = [
        f"{' '.join(words.split()[i:] + words.split()[:i])} {i},{label}"
        for label, words in topics.items()
        for i in range(6)
    ]
    data = tmp_path / "small.csv"
    data.write_text("text,category\n" + "\n".join(rows) + "\n", encoding="utf-8")
    blocked = tmp_path / "a-file"
    blocked.write_text("", encoding="utf-8")
    args = ["model", "train", "--data", str(data), "--text-col", "text", "--label-col", "category"]
    assert main([*args, "--raw-labels", "--out", str(blocked / "model")]) == 2
    assert f"error: {blocked / 'model'}: cannot write the model" in capsys.readouterr().err
