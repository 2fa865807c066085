"""What the urgency detector costs the classifier worker: the worker's handler timed with the urgency code of
earlier commits and with today's, interleaved in one process, and the ratios.

    python -m bench.urgency_speed [--teddy-model DIR] [--rounds 5] [--tickets 3000] [--before REV ...]

The handler is the worker's `analyse` + `decide` without Redis (what `bench/classifier_worker.py` times), over
the raw Teddy Cup 2020 C messages (median 240 characters) from ../shared/datasets or $HOTLINE_DATASETS, cycled
to --tickets, in batches of 100. The urgency rules passed to `analyse`:

- none: a constant answer, the floor (what the rest of the handler costs);
- each --before REV (default: fe0b6c8, the exact-phrase rules before issue 14, and cf47538, the detector
  before the generalisation work): that commit's urgency code and data (urgency.py, cues.py,
  urgency_model.py, data/urgency.yaml, data/urgency_model.json, as `git show` gives them), imported from a
  temporary package, so the old code runs as it was, beside today's, on the same texts;
- new: the working tree's detector (lexicon automaton, combinations, take-backs, the urgency model).

Each round times every rule once over all tickets (CPU time of this process), the handler and then the rule
alone (each text folded first, as the worker's model does), the order rotating between rounds so that a slower
stretch of the shared machine does not fall on one rule; the figure per rule is its median round, and the
ratios are paired per round. A ratio is of whole-handler time: what the worker's throughput loses or gains.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.classifier_worker import batches, datasets_dir, events_of, read_teddy
from services.classifier.app import ClassifierSettings
from services.classifier.handlers import analyse, decide
from services.classifier.model import TextClassifier
from services.classifier.place import default_gazetteer
from services.classifier.starter import ensure_default_model
from services.classifier.text import fold
from services.classifier.urgency import Urgency, detector
from shared.events import TicketReceived

Rule = Callable[[str, str | None], Urgency]


REPO = Path(__file__).resolve().parents[1]
URGENCY_FILES = ("urgency.py", "cues.py", "urgency_model.py", "data/urgency.yaml", "data/urgency_model.json")
BEFORE = ("fe0b6c8", "cf47538")


def urgency_at(rev: str, into: Path) -> Rule:
    """`urgency_of` of a commit: its urgency files in a package of their own under `into` (imports of each
    other rewritten to it; the rest of the classifier is today's)."""
    package = f"urgency_{rev}"
    root = into / package
    (root / "data").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    for name in URGENCY_FILES:
        shown = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:services/classifier/{name}"], capture_output=True
        )
        if shown.returncode == 0:  # the model and cue module came later than the first rules
            body = shown.stdout.decode("utf-8")
            if name.endswith(".py"):
                body = re.sub(r"services\.classifier\.(urgency_model|urgency|cues)\b", rf"{package}.\1", body)
            (root / name).write_text(body, encoding="utf-8")
    if str(into) not in sys.path:
        sys.path.insert(0, str(into))
    rule: Rule = importlib.import_module(f"{package}.urgency").urgency_of
    return rule


def no_urgency(text: str, category: str | None) -> Urgency:
    return Urgency("general", "none")


def handler_seconds(model: TextClassifier, events: list[TicketReceived], urgency: Rule) -> float:
    """CPU seconds of `analyse` + `decide` over all events with this urgency rule."""
    settings = ClassifierSettings()
    policy, gazetteer = settings.duplicate_policy(), default_gazetteer()
    started = time.process_time()
    for batch in batches(events):
        analyses = analyse(batch, model=model, gazetteer=gazetteer, urgency=urgency)
        decide(analyses, candidates={}, policy=policy, review_below=0.5, version=model.version)
    return time.process_time() - started


def rule_seconds(events: list[TicketReceived], urgency: Rule) -> float:
    """CPU seconds of the urgency rule alone over the events' texts, each folded first as the worker's model
    does (both read the cached fold)."""
    started = time.process_time()
    for event in events:
        fold(event.text)
        urgency(event.text, None)
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--teddy-model", type=Path, help="a model made by `hotline model train` (default: starter)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tickets", type=int, default=3000)
    parser.add_argument("--before", nargs="+", default=list(BEFORE), help="commits to compare with")
    args = parser.parse_args()
    if not (datasets_dir() / "teddycup2020c" / "classify_train.csv").exists():
        print(f"datasets not found under {datasets_dir()} (set HOTLINE_DATASETS)", file=sys.stderr)
        return 2
    _, _, raw = read_teddy()
    events = events_of(raw, args.tickets)
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        rules: dict[str, Rule] = {"none (floor)": no_urgency}
        rules |= {rev: urgency_at(rev, Path(tmp) / "old") for rev in args.before}
        rules["new"] = detector()
        model = TextClassifier.load(args.teddy_model or ensure_default_model(Path(tmp) / "starter"))
        print(
            f"model: {args.teddy_model or 'starter (default)'}; {len(events)} tickets; {args.rounds} rounds"
        )
        print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for rule in rules.values():  # warm up: caches, the urgency model's load
            handler_seconds(model, events[:200], rule)
        seconds: dict[str, list[float]] = {name: [] for name in rules}
        alone: dict[str, list[float]] = {name: [] for name in rules}
        names = list(rules)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                seconds[name].append(handler_seconds(model, events, rules[name]))
                alone[name].append(rule_seconds(events, rules[name]))
            print(f"round {r + 1}: " + ", ".join(f"{n} {seconds[n][-1]:.2f} s" for n in names), flush=True)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    table = [
        "| urgency rule | handler µs per ticket (median round) | texts/s per core | handler time / new "
        "| the rule alone, µs per text |",
        "|---|---|---|---|---|",
    ]
    table += [
        f"| {name} | {median[name] / len(events) * 1e6:,.0f} | {len(events) / median[name]:,.0f} | "
        f"{median[name] / median['new']:.3f} | {statistics.median(alone[name]) / len(events) * 1e6:,.1f} |"
        for name in names
    ]
    print("\n" + "\n".join(table))
    for rev in args.before:
        paired = [new / old for new, old in zip(seconds["new"], seconds[rev], strict=True)]
        per_round = ", ".join(f"{p:.3f}" for p in paired)
        print(f"\nhandler time new / {rev}, per round: {per_round}; median {statistics.median(paired):.3f}")
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
