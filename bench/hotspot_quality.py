"""Hotspots on the real messages against our labelled issues: is each of the top 10 one issue, is any split?

    .venv/bin/python bench/hotspot_quality.py [--top 10]

Reads the Teddy Cup 2020 C hotspot messages from the team's datasets (never copied here) and
`bench/data/hotspot_issues.csv`: message ids with the issue we judged each to belong to, written by us by
reading the messages (14 issues, 220 messages; a message not listed belongs to none of them). Runs the
clusterer with named places as keys, and the same clusterer without them (the baseline, as it was), and
prints for each top issue its size, the labelled issue most of it is and that share (purity); then per
labelled issue, the share of its messages that its biggest cluster holds (how whole it is) and its rank.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

from services.insight.cli import HOTSPOT_DATA, dataset_path, read_messages
from services.insight.clusters import ClusterConfig, Clusterer, Message

LABELS = Path(__file__).resolve().parent / "data" / "hotspot_issues.csv"


def run(messages: list[Message], config: ClusterConfig) -> tuple[Clusterer, float]:
    started = time.perf_counter()
    clusterer = Clusterer(config)
    for i in range(0, len(messages), 64):
        clusterer.add(messages[i : i + 64])
    clusterer.consolidate()
    return clusterer, time.perf_counter() - started


def report(name: str, clusterer: Clusterer, labels: dict[str, str], top: int) -> dict[str, float]:
    issues = clusterer.issues(top=top)
    print(f"\n{name}: top {top}")
    print(f"{'#':>2} {'size':>4}  {'issue (labelled)':<34} {'purity':>6}  label")
    pure = 0
    majority: Counter[str] = Counter()
    for rank, issue in enumerate(issues, start=1):
        found = Counter(labels.get(m, "-") for m in issue.message_ids)
        best, n = found.most_common(1)[0]
        purity = n / len(issue.message_ids)
        pure += best != "-" and purity >= 0.8
        if best != "-":
            majority[best] += 1
        print(f"{rank:>2} {len(issue.message_ids):>4}  {best:<34} {purity:6.0%}  {issue.label[:36]}")
    split = sum(1 for n in majority.values() if n > 1)
    # How whole each labelled issue is: the share of its messages in its biggest cluster, and that rank.
    ranked = clusterer.issues()
    rank_of = {id(i): r for r, i in enumerate(ranked, start=1)}
    wholeness = []
    print(f"{'labelled issue':<34} {'messages':>8} {'biggest cluster holds':>22} {'its rank':>9}")
    for issue_name, total in sorted(Counter(labels.values()).items(), key=lambda kv: -kv[1]):
        best_share, best_rank = 0.0, 0
        for cluster in ranked:
            share = sum(labels.get(m) == issue_name for m in cluster.message_ids) / total
            if share > best_share:
                best_share, best_rank = share, rank_of[id(cluster)]
        wholeness.append(best_share)
        print(f"{issue_name:<34} {total:>8} {best_share:>22.0%} {best_rank:>9}")
    summary = {"pure": pure, "split": split, "wholeness": sum(wholeness) / len(wholeness)}
    print(
        f"{name}: {pure}/{top} of the top are one labelled issue (purity >= 80%); {split} labelled issue(s) "
        f"lead two or more of them; mean share of an issue in its biggest cluster {summary['wholeness']:.0%}"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    messages = read_messages(dataset_path(HOTSPOT_DATA))
    with LABELS.open(encoding="utf-8") as f:
        labels = {row["id"]: row["issue"] for row in csv.DictReader(f)}
    ours, t_ours = run(messages, ClusterConfig())
    base, t_base = run(messages, ClusterConfig(use_places=False))
    a = report("named places as keys", ours, labels, args.top)
    b = report("baseline (text, district and time only)", base, labels, args.top)
    print(
        f"\none labelled issue in the top {args.top}: {a['pure']:.0f} vs {b['pure']:.0f} (baseline); split: "
        f"{a['split']:.0f} vs {b['split']:.0f}; wholeness {a['wholeness']:.0%} vs {b['wholeness']:.0%}; "
        f"time {t_ours:.1f}s vs {t_base:.1f}s ({t_ours / t_base:.2f}x) for {len(messages)} messages"
    )


if __name__ == "__main__":
    main()
