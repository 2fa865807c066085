"""Emergency recall and false alarms of the urgency detector, with the rules it replaced, in the same run.

    python bench/urgency.py [--data bench/data/urgency_eval.csv] [--show 15]

1. Our own set (bench/data/urgency_eval.csv, written by the Hotline team, see bench/data/README.md): 411
   emergencies and 425 non-emergencies (negations, repairs, past events, prevention questions, near-misses
   that use hazard words, ordinary complaints), zh and en. Recall = emergencies flagged "emergency";
   false alarms = non-emergencies flagged "emergency". Its `half` column: A and B alternate rows of the
   first 645; C is 191 rows written after the lexicon was frozen.
   - whole set: the shipped detector (lexicon + data/urgency_model.json, which is trained on the whole set,
     so its model part is in-sample here);
   - B: the model trained on A only, the detector scored on B. The lexicon was tuned on A's misses first,
     then on B's too (B is held out for the model only);
   - C: the model trained on A + B, the detector scored on C: held out for both the lexicon and the model.
   Baseline, same run: the exact-phrase rules before issue 14 (bench/data/urgency_rules_before.yaml).
2. Real messages from ../shared/datasets (or $HOTLINE_DATASETS), none of them labelled for urgency: how
   many each detector flags "emergency" (a false-alarm sanity check: a city's ordinary complaints are
   almost never emergencies), with the cues that fired most and a sample of what was flagged.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.classifier.cues import load
from services.classifier.text import fold
from services.classifier.urgency import Detector, detector
from services.classifier.urgency_model import UrgencyModel

HERE = Path(__file__).resolve().parent
EVAL = HERE / "data" / "urgency_eval.csv"
RULES_BEFORE = HERE / "data" / "urgency_rules_before.yaml"

Flag = Callable[[str], tuple[bool, str]]  # text -> (emergency?, what fired)


@dataclass(frozen=True)
class Row:
    id: str
    half: str
    emergency: bool
    lang: str
    kind: str
    text: str


def read_eval(path: Path) -> list[Row]:
    with path.open(encoding="utf-8", newline="") as f:
        return [
            Row(r["id"], r["half"], r["label"] == "emergency", r["lang"], r["kind"], r["text"])
            for r in csv.DictReader(f)
        ]


def rules_before(path: Path = RULES_BEFORE) -> Flag:
    """The exact-phrase matching of services/classifier/urgency.py before issue 14, emergency level only."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))

    def alternation(section: dict[str, list[str]]) -> re.Pattern[str]:
        phrases = sorted((p.lower() for lang in ("zh", "en") for p in section[lang]), key=len, reverse=True)
        parts = [
            re.escape(p) if re.search("[\u3400-\u9fff]", p) else rf"(?<![\w-]){re.escape(p)}(?![\w-])"
            for p in phrases
        ]
        return re.compile("|".join(parts))

    cue, ignore, negation = (alternation(data[k]) for k in ("emergency", "ignore", "negations"))
    clause_end = re.compile(r"[,.;!?，。；！？、\n]")

    def flag(text: str) -> tuple[bool, str]:
        clean = ignore.sub(lambda m: " " * len(m.group()), fold(text))
        for m in cue.finditer(clean):
            before = clause_end.split(clean[max(0, m.start() - 12) : m.start()])[-1]
            if not negation.search(before):
                return True, f"keyword:{m.group()}"
        return False, "none"

    return flag


def of_detector(d: Detector) -> Flag:
    def flag(text: str) -> tuple[bool, str]:
        u = d(text, None)
        return u.level == "emergency", u.cue

    return flag


def scores(flag: Flag, rows: list[Row]) -> dict[str, str]:
    out = {}
    for lang in ("all", "zh", "en"):
        chosen = [r for r in rows if lang in ("all", r.lang)]
        pos = [r for r in chosen if r.emergency]
        neg = [r for r in chosen if not r.emergency]
        hits = sum(flag(r.text)[0] for r in pos)
        alarms = sum(flag(r.text)[0] for r in neg)
        out[f"recall {lang}"] = f"{hits / len(pos):.3f} ({hits}/{len(pos)})"
        out[f"FA {lang}"] = f"{alarms / len(neg):.1%} ({alarms}/{len(neg)})"
    return out


def print_table(title: str, results: dict[str, dict[str, str]]) -> None:
    columns = list(next(iter(results.values())))
    print(f"\n{title}\n")
    print("| detector | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, cells in results.items():
        print(f"| {name} | " + " | ".join(cells[c] for c in columns) + " |")


def print_errors(flag: Flag, rows: list[Row], show: int) -> None:
    wrong = [(r, flag(r.text)) for r in rows if flag(r.text)[0] != r.emergency]
    print(f"\nerrors of the detector on C ({len(wrong)}; first {min(show, len(wrong))}):")
    for r, (_, cue) in wrong[:show]:
        print(f"  {'missed' if r.emergency else 'false alarm'} [{r.id} {r.kind}] {r.text}  -> {cue}")


def datasets_dir() -> Path:
    return Path(
        os.environ.get("HOTLINE_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )


def real_texts() -> dict[str, list[str]]:
    """Real citizens' messages per data set (read in place, never copied)."""
    root = datasets_dir()
    sources: dict[str, tuple[Path, Callable[[dict[str, str]], str]]] = {
        "Teddy Cup 2020 C, raw messages (classify_train.csv text_raw)": (
            root / "teddycup2020c" / "classify_train.csv",
            lambda r: r["text_raw"],
        ),
        "Teddy Cup 2020 C, hotspot messages (title + text)": (
            root / "teddycup2020c" / "hotspot_messages.csv",
            lambda r: f"{r['title']}\n{r['text']}",
        ),
        "Chicago CDPH environmental complaints 2021 (text)": (
            root / "chicago_cdph_env_complaints_2021" / "complaints.csv",
            lambda r: r["text"],
        ),
    }
    out = {}
    for name, (path, text_of) in sources.items():
        if not path.exists():
            print(f"  (skipped: {path} not found; set HOTLINE_DATASETS)")
            continue
        with path.open(encoding="utf-8", newline="") as f:
            out[name] = [t for r in csv.DictReader(f) if (t := text_of(r).strip())]
    return out


def real_data(flags: dict[str, Flag], show: int) -> None:
    print("\nReal messages flagged emergency (no urgency labels: a sanity check of false alarms)\n")
    texts = real_texts()
    print("| data set | messages | " + " | ".join(flags) + " |")
    print("|---|---|" + "---|" * len(flags))
    flagged: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for name, items in texts.items():
        cells = []
        for detector_name, flag in flags.items():
            found = [(t, cue) for t in items for ok, cue in [flag(t)] if ok]
            flagged.setdefault(name, {})[detector_name] = found
            cells.append(f"{len(found)} ({len(found) / len(items):.1%})")
        print(f"| {name} | {len(items)} | " + " | ".join(cells) + " |")
    new = next(iter(flags))
    for name, by_detector in flagged.items():
        found = by_detector[new]
        kinds = Counter(cue.split(":")[0] + ":" + cue.split(":")[1].split("+")[0] for _, cue in found)
        print(f"\n{name}: {new} fired by {dict(kinds.most_common(8))}")
        for text, cue in found[:show]:
            print(f"  {cue:28} {text[:110]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=EVAL)
    parser.add_argument("--show", type=int, default=15, help="errors and real flags to print")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = read_eval(args.data)
    half_a = [r for r in rows if r.half == "A"]
    half_b = [r for r in rows if r.half == "B"]
    fresh = [r for r in rows if r.half == "C"]
    before = rules_before()
    shipped = of_detector(detector())
    lexicon_only = of_detector(Detector(load()))
    trained_a = UrgencyModel.train([r.text for r in half_a], [r.emergency for r in half_a])
    held_out = of_detector(Detector(load(), trained_a.score, trained_a.threshold))
    trained_ab = UrgencyModel.train([r.text for r in half_a + half_b], [r.emergency for r in half_a + half_b])
    unseen = of_detector(Detector(load(), trained_ab.score, trained_ab.threshold))
    n_pos, n_neg = sum(r.emergency for r in rows), sum(not r.emergency for r in rows)
    print(f"{args.data}: {len(rows)} phrasings, {n_pos} emergencies, {n_neg} non-emergencies")
    print_table(
        "Whole set (the shipped model is trained on this whole set: its part is in-sample)",
        {
            "new: lexicon + shipped model": scores(shipped, rows),
            "new: lexicon only": scores(lexicon_only, rows),
            "baseline: rules before issue 14": scores(before, rows),
        },
    )
    print_table(
        f"Half B ({len(half_b)} rows; model trained on half A, {len(half_a)} rows; lexicon tuned on A and B)",
        {
            "new: lexicon + model trained on A": scores(held_out, half_b),
            "new: lexicon only": scores(lexicon_only, half_b),
            "baseline: rules before issue 14": scores(before, half_b),
        },
    )
    print_table(
        f"Held-out C ({len(fresh)} rows written after the lexicon was frozen; model trained on A + B)",
        {
            "new: lexicon + model trained on A + B": scores(unseen, fresh),
            "new: lexicon only": scores(lexicon_only, fresh),
            "baseline: rules before issue 14": scores(before, fresh),
        },
    )
    print_errors(unseen, fresh, args.show)
    real_data({"new (shipped)": shipped, "rules before": before}, args.show)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
