"""Does the urgency reviewer send the emergencies it raises to a department that can act on them?

    HOTLINE_DATASETS=/work/shared/datasets python -m bench.hazard_kind [--cache FILE.npz]

On the held-out parts D and E of bench/data/urgency_eval.csv (never trained on, never used to choose
anything), for every emergency row whose `kind` names a hazard of services/classifier/data/hazards.yaml:
- the shipped hazard kind model's kind (services/classifier/data/hazard_kind.json, trained on A, B, C and T
  by `hotline model train-hazard-kind`): per kind, how often it is the row's kind, and how often its
  category's departments can act on the row's kind;
- the baseline: the category the classifier chose (its default model, as `hotline up` runs it), and how
  often its departments can act;
- the reviewer's rule (urgency_review.py): the classifier's category, moved to the recognised kind's
  category when that one cannot act on the recognised kind and the confidence is at or above the model's
  threshold; how often the result can act, how many rows moved, and how many moved away from a category
  that could act (harm).
The same figures are printed for the rows the reviewer raises (the shipped detector does not call them
emergencies, the e5 urgency model does) and for those the classifier's detector calls emergencies.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.urgency import EVAL, read_eval
from services.classifier import urgency_e5
from services.classifier.hazard_kind import HazardKind
from services.classifier.hazards import load
from services.classifier.model import TextClassifier
from services.classifier.starter import default_model_dir, ensure_default_model
from services.classifier.urgency import detector
from services.classifier.urgency_e5 import E5Urgency

HELD_OUT = ("D", "E")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=None, help="an .npz of e5 embeddings to reuse")
    args = parser.parse_args()
    hazards = load()
    model, urgency = HazardKind.load(), E5Urgency.load()
    classifier = TextClassifier.load(ensure_default_model(default_model_dir()))
    detect = detector()
    print(
        f"hazard kind model: {len(model.classes)} kinds, C={model.c:g}, threshold {model.threshold:.3f}, "
        f"trained on {model.trained_on} rows; the classifier's default model"
    )
    for half in HELD_OUT:
        rows = [r for r in read_eval(EVAL) if r.half == half and r.emergency]
        named = [r for r in rows if hazards.name(r.kind)]
        texts = [r.text for r in named]
        vectors = urgency_e5.embed(texts, args.cache)
        found = model.recognise(vectors)
        filed = [p.category for p in classifier.predict(texts)]
        flagged = np.asarray([detect(t, None).level == "emergency" for t in texts])
        raised = (urgency.probability(vectors) >= urgency.threshold) & ~flagged
        print(
            f"\n## {half}: {len(named)} emergencies of a named kind "
            f"({len(rows) - len(named)} `other` left out)"
        )
        for title, pick in (
            ("every emergency", np.ones(len(named), bool)),
            ("raised by the reviewer", raised),
            ("called emergencies by the classifier (its lexicon + n-gram detector)", flagged),
        ):
            table: dict[str, list[tuple[bool, ...]]] = defaultdict(list)
            for r, f, c, chosen in zip(named, found, filed, pick, strict=True):
                if not chosen:
                    continue
                kind = str(hazards.name(r.kind))
                move = f.confidence >= model.threshold and not hazards.acts(f.kind, c)
                after = hazards.category(f.kind) if move else c
                table[kind].append(
                    (
                        f.kind == kind,
                        hazards.acts(kind, hazards.category(f.kind)),
                        hazards.acts(kind, c),
                        hazards.acts(kind, after),
                        move,
                        move and hazards.acts(kind, c) and not hazards.acts(kind, after),
                    )
                )
            print(f"\n### {title}\n")
            print(
                "| kind | rows | kind right | its category acts | classifier's acts | after the rule "
                "| moved | harm |"
            )
            print("|---|---|---|---|---|---|---|---|")
            every = [t for k in sorted(table) for t in table[k]]
            for name, cells in [*sorted(table.items()), ("**all**", every)]:
                n = len(cells)
                share = [sum(c[i] for c in cells) / max(1, n) for i in range(4)]
                print(
                    f"| {name} | {n} | {share[0]:.2f} | {share[1]:.2f} | {share[2]:.2f} | {share[3]:.2f} "
                    f"| {sum(c[4] for c in cells)} | {sum(c[5] for c in cells)} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
