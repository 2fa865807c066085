"""Emergency recall and false alarms of the urgency detector, with the rules it replaced, in the same run.

    python -m bench.urgency [--data bench/data/urgency_eval.csv] [--show 15] [--errors C]

1. Our own set (bench/data/urgency_eval.csv, written by the Hotline team, see bench/data/README.md):
   emergencies and non-emergencies (negations, hypotheticals, repairs, past events, harmless sources,
   near-misses that use hazard words, ordinary complaints), zh and en. Recall = emergencies flagged
   "emergency"; false alarms = non-emergencies flagged "emergency". Each part of the file (`half`: A, B, C,
   D, E) is scored on its own and the whole set together, by the shipped detector (lexicon + model), the
   lexicon alone and, as the baseline in the same run, the exact-phrase rules before issue 14
   (bench/data/urgency_rules_before.yaml). D and E are held out: never tuned on, not trained on.
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

HERE = Path(__file__).resolve().parent
EVAL = HERE / "data" / "urgency_eval.csv"
RULES_BEFORE = HERE / "data" / "urgency_rules_before.yaml"

# What each part of the eval file is worth as evidence (bench/data/README.md tells the story).
HALVES = {
    "A": "the lexicon was tuned on its misses; the shipped model is trained on it",
    "B": "the lexicon was tuned on its misses; the shipped model is trained on it",
    "C": "written after the lexicon was first frozen (8c3b693), then the development set: the lexicon tuned "
    "on its misses, the shipped model trained on it",
    "D": "HELD OUT: written and frozen (cf47538) before the tuning on C; never tuned on, never trained on",
    "E": "HELD OUT: written blind (by someone who had seen neither the rules, the model nor the other sets); "
    "never tuned on, never trained on",
    "whole": "all of the above",
}

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
    half = rows[0].half if rows else "-"
    print(f"\nerrors of the shipped detector on {half} ({len(wrong)}; first {min(show, len(wrong))}):")
    for r, (_, cue) in wrong[:show]:
        print(f"  {'missed' if r.emergency else 'false alarm'} [{r.id} {r.kind}] {r.text}  -> {cue}")


def print_kinds(flag: Flag, rows: list[Row]) -> None:
    """Per kind of report, how many the detector flags: where a set's errors are, without their texts (so a
    held-out set can be read for what is left without being tuned on)."""
    kinds = sorted({(r.emergency, r.kind) for r in rows}, key=lambda k: (not k[0], k[1]))
    cells = []
    for emergency, kind in kinds:
        chosen = [r for r in rows if (r.emergency, r.kind) == (emergency, kind)]
        flagged = sum(flag(r.text)[0] for r in chosen)
        cells.append(f"{'emergency' if emergency else 'other'}/{kind} {flagged}/{len(chosen)}")
    half = rows[0].half if rows else "-"
    print(f"\nflagged per kind on {half}: " + ", ".join(cells))


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
    parser.add_argument("--errors", default="C", help="the set whose errors are printed (C: development)")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = read_eval(args.data)
    flags = {
        "new: lexicon + shipped model": of_detector(detector()),
        "new: lexicon only": of_detector(Detector(load())),
        "baseline: rules before issue 14": rules_before(),
    }
    n_pos, n_neg = sum(r.emergency for r in rows), sum(not r.emergency for r in rows)
    print(f"{args.data}: {len(rows)} phrasings, {n_pos} emergencies, {n_neg} non-emergencies")
    for half, meaning in HALVES.items():
        chosen = [r for r in rows if half in ("whole", r.half)]
        print_table(
            f"{half} ({len(chosen)} rows): {meaning}", {name: scores(f, chosen) for name, f in flags.items()}
        )
    print_errors(flags["new: lexicon + shipped model"], [r for r in rows if r.half == args.errors], args.show)
    for held_out in ("D", "E"):
        print_kinds(flags["new: lexicon + shipped model"], [r for r in rows if r.half == held_out])
    real_data(
        {
            "new (shipped)": flags["new: lexicon + shipped model"],
            "rules before": flags["baseline: rules before issue 14"],
        },
        args.show,
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
