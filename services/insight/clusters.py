"""Emerging issues: incremental clustering of similar complaints by text, place and time.

Each message becomes a character 2-3-gram vector (hashed, so the vocabulary never has to be known in
advance; weighted by an IDF kept from the messages seen so far; the anonymised or generic place codes such
as "A市" or "A3区" are removed, because they say where but not what). A message joins the most similar
*active* cluster (last message within `window_days`) whose centroid it matches with cosine >= `threshold`
and whose district does not contradict its own; otherwise it starts a new cluster. Batches are processed
in time order, so the service and the offline tool run the same algorithm.

A cluster reports:
- `label`: the title (or opening words) of its most central message, i.e. drawn from its messages;
- `heat`: volume x engagement x concentration. Volume counts distinct citizens (a repeat caller counts
  half), engagement is `1 + log10(1 + likes)`, concentration `sqrt(peak week / messages)` favours issues
  that flare up over ones that trickle; a decay on age ranks live issues first when `now` is given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from services.insight import places as place_names
from services.insight.places import Place

# Anonymised administrative units ("A市", "A3区", "K9县", "西地省") and filler that every complaint shares.
_GENERIC = re.compile(r"[A-Z]\d{0,2}[市区县省]|西地省|请问|您好|你好|领导|尊敬的|[\s\W_]+")
_GENERIC_DISTRICT = re.compile(r"^([A-Z]市|)$")
N_FEATURES = 2**18
# A title says what the message is about; a body mostly adds shared complaint phrasing. Messages without a
# title (phone tickets) are represented by their opening, which is where callers say what and where.
SHORT_TITLE = 8
OPENING_CHARS = 60


@dataclass(frozen=True)
class Message:
    id: str
    text: str
    created_at: datetime
    title: str = ""
    location: str | None = None
    likes: int = 0
    author: str | None = None

    @cached_property
    def places(self) -> list[Place]:
        return place_names.places_of(self.title, self.text)


@dataclass(frozen=True)
class ClusterConfig:
    threshold: float = 0.35
    merge_threshold: float = 0.3
    # Messages naming the same estate, company, school or road are one issue at a lower similarity: their
    # titles often share little besides the name ("58车贷案件进展" / "严惩58车贷诈骗案保护伞").
    place_threshold: float = 0.25
    place_merge_threshold: float = 0.3
    use_places: bool = True  # False: text, district and time only (the clusterer before places, a baseline)
    window_days: float = 45.0
    min_messages: int = 2
    half_life_days: float = 14.0


@dataclass
class Cluster:
    id: int
    district: str | None
    members: list[Message] = field(default_factory=list)
    # The sum of member vectors, by hashed feature: adding a message touches only its own ~100 features,
    # where a sparse matrix would be rebuilt.
    centroid: dict[int, float] = field(default_factory=dict)
    # Kept as messages join, so that finding the active clusters and ranking them every refresh do not
    # walk every member of every cluster.
    first: datetime | None = None
    last: datetime | None = None
    volume_heat: float | None = field(default=None, repr=False)  # heat before the decay on age
    # What the heat is made of (distinct citizens, likes, messages per week), counted as messages join:
    # every pass ranks the clusters that changed, and walking all their members grew with them.
    authors: set[str] = field(default_factory=set, repr=False)
    likes: int = 0
    weeks: dict[int, int] = field(default_factory=dict, repr=False)
    # Its most central member, and among how many members it was found: the hourly pass labels every
    # cluster of the window, most of which no message has joined since the last hour.
    central: tuple[int, Message] | None = field(default=None, repr=False, compare=False)
    # The places its members name, and how many name each: a message naming another estate or company
    # never joins it, and its most named place is its key.
    places: dict[Place, int] = field(default_factory=dict)

    def add_places(self, found: Iterable[Place], times: int = 1) -> None:
        for p in found:
            self.places[p] = self.places.get(p, 0) + times

    @property
    def place_key(self) -> str | None:
        """The place its members name most often (the more telling kind on a tie)."""
        ranked = sorted(self.places, key=lambda p: (-self.places[p], place_names.KINDS.index(p.kind), p.name))
        return place_names.key(ranked[:1])

    @property
    def start(self) -> datetime:
        assert self.first is not None, "a cluster has at least one member"
        return self.first

    @property
    def end(self) -> datetime:
        assert self.last is not None, "a cluster has at least one member"
        return self.last

    def join(self, messages: Sequence[Message], features: np.ndarray, weights: np.ndarray) -> None:
        """Add members whose vectors sum to (features, weights)."""
        self.members.extend(messages)
        oldest, newest = min(m.created_at for m in messages), max(m.created_at for m in messages)
        self.first = oldest if self.first is None else min(self.first, oldest)
        self.last = newest if self.last is None else max(self.last, newest)
        self.volume_heat = None
        for m in messages:
            self.authors.add(m.author or m.id)
            self.likes += max(0, m.likes)
            week = int(m.created_at.timestamp() // (7 * 86400))
            self.weeks[week] = self.weeks.get(week, 0) + 1
        centroid = self.centroid
        for f, w in zip(features.tolist(), weights.tolist(), strict=True):
            centroid[f] = centroid.get(f, 0.0) + w


@dataclass(frozen=True)
class Issue:
    label: str
    heat: float
    start: datetime
    end: datetime
    message_ids: list[str]
    district: str | None
    likes: int
    authors: int
    keywords: list[str]
    place: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "heat": round(self.heat, 3),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "size": len(self.message_ids),
            "message_ids": self.message_ids,
            "district": self.district,
            "likes": self.likes,
            "authors": self.authors,
            "keywords": self.keywords,
            "place": self.place,
        }


def features_text(message: Message) -> str:
    title = _GENERIC.sub(" ", message.title).strip()
    if len(title.replace(" ", "")) >= SHORT_TITLE:
        return title
    return f"{title} {_GENERIC.sub(' ', message.text[:OPENING_CHARS])}".strip()


def specific_district(location: str | None) -> str | None:
    """A district-level place, or None for a city-wide or unknown one (which matches any district)."""
    if location is None or _GENERIC_DISTRICT.match(location.strip()):
        return None
    return location.strip()


class Clusterer:
    """The clusters of the messages of a window (`prune` forgets the older ones). What the service pays:
    - a batch of messages: their vectors, one sparse product with the active clusters' centroids (kept
      between batches, `_Index`), and the clusters naming their companies, looked up by name; a scan of
      the clusters, to find the active ones, per batch of up to 256;
    - a pass's `issues()`: the heat of every cluster of the window (its parts counted as messages join,
      decayed on age), then the labels of the hottest, from what the last pass kept of them and the
      members that joined since. An issue lists every member's id, so publishing them costs as much as
      the hottest clusters are large: bounded by the window, as every cost here;
    - the hourly `labelled()`: every cluster of the window, found central again only where messages
      joined.
    Nothing walks every message ever seen."""

    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = config or ClusterConfig()
        self.vectorizer = HashingVectorizer(
            analyzer="char", ngram_range=(2, 3), n_features=N_FEATURES, alternate_sign=False, norm=None
        )
        self.df = np.zeros(N_FEATURES)
        self.n_docs = 0
        self.clusters: dict[int, Cluster] = {}
        self._next_id = 0
        self._seen: set[str] = set()
        # Each cluster's centroid as sorted (features, weights) arrays, dropped when the cluster changes.
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._index = _Index()
        # The clusters naming each company or case: a message naming one is compared with each of them
        # whatever its words, and looking them up by name, rather than asking every active cluster, keeps
        # a message's cost from growing with the number of clusters.
        self._by_company: dict[str, set[int]] = {}
        # What labelling the clusters last published needs, kept so that the next pass reads only the
        # members that joined since: a hot issue keeps growing, and labelling it anew walked every member.
        self._labelling: dict[int, _Labelling] = {}

    def _vectors(self, messages: Sequence[Message]) -> sp.csr_matrix:
        """TF-IDF rows, L2-normalised; the IDF is computed only on the features the batch holds."""
        tf = self._vectors_readonly(messages)
        np.add.at(self.df, tf.indices, 1.0)  # the hasher sums duplicates: one entry per feature and row
        self.n_docs += len(messages)
        idf = np.log((1.0 + self.n_docs) / (1.0 + self.df[tf.indices])) + 1.0
        data = tf.data * idf
        rows = np.repeat(np.arange(len(messages)), np.diff(tf.indptr))
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(messages)))
        norms[norms == 0] = 1.0
        return sp.csr_matrix((data * (1.0 / norms)[rows], tf.indices, tf.indptr), shape=tf.shape)

    def _centroids(self, clusters: Sequence[Cluster]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The clusters' centroids as the rows of one matrix, and their L2 norms."""
        rows = [self._row(c) for c in clusters]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(f) for f, _ in rows], out=indptr[1:])
        data = np.concatenate([w for _, w in rows]) if rows else np.zeros(0)
        indices = np.concatenate([f for f, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(rows)), np.diff(indptr))
        norms = np.sqrt(np.bincount(owner, weights=data * data, minlength=len(rows)))
        return sp.csr_matrix((data, indices, indptr), shape=(len(rows), N_FEATURES)), norms

    def _row(self, cluster: Cluster) -> tuple[np.ndarray, np.ndarray]:
        row = self._rows.get(cluster.id)
        if row is None:
            features = np.fromiter(cluster.centroid, dtype=np.int64, count=len(cluster.centroid))
            weights = np.fromiter(cluster.centroid.values(), dtype=float, count=len(cluster.centroid))
            order = np.argsort(features)
            row = self._rows[cluster.id] = (features[order], weights[order])
        return row

    def unseen(self, ids: Iterable[str]) -> list[str]:
        """The ids not added yet: the rest need not be read back, since `add` would ignore them."""
        return [i for i in ids if i not in self._seen]

    def add(self, messages: Iterable[Message]) -> None:
        """Add messages (in time order); a message already seen is ignored, so replays change nothing."""
        fresh = [m for m in messages if m.id not in self._seen]
        if not fresh:
            return
        self._seen.update(m.id for m in fresh)
        x = self._vectors(fresh)
        window = timedelta(days=self.config.window_days)
        active = [c for c in self.clusters.values() if fresh[0].created_at - c.end <= window]
        comparable = {c.id for c in active}  # and the clusters the batch starts
        matches = self._matches(x, active)
        within = (x @ x.T).toarray()
        new_of_batch: list[tuple[int, Cluster]] = []  # (row in batch, cluster) started in this batch
        for i, message in enumerate(fresh):
            district = specific_district(message.location)
            named = message.places if self.config.use_places else []
            candidates = [(self.clusters[cid], sim) for cid, sim in matches[i]]
            candidates += [(cluster, within[i, row]) for row, cluster in new_of_batch]
            if companies := [p.name for p in named if p.kind == "company"]:
                # One issue whatever its words: look by name. In id order, as the candidates above.
                seen = {c.id for c, _ in candidates}
                naming = set().union(*(self._by_company.get(name, ()) for name in companies))
                found = sorted(naming & comparable - seen)
                candidates += [(self.clusters[cid], 0.0) for cid in found]
            best, best_score = None, 0.0
            for cluster, sim in candidates:
                if not _compatible(cluster.district, district):
                    continue
                here = list(cluster.places)
                if place_names.different_places(named, here):
                    continue
                same = place_names.shared(named, here)
                if sim < self._threshold(same, self.config.threshold, self.config.place_threshold):
                    continue
                # The same place counts for more than a few shared characters.
                score = sim + (1.0 if same else 0.0)
                if score >= best_score:
                    best, best_score = cluster, score
            if best is None:
                best = Cluster(id=self._next_id, district=district)
                self._next_id += 1
                self.clusters[best.id] = best
                new_of_batch.append((i, best))
                comparable.add(best.id)
            best.district = best.district or district
            self._add_places(best, named)
            start, stop = x.indptr[i], x.indptr[i + 1]
            best.join([message], x.indices[start:stop], x.data[start:stop])
            self._changed(best.id)

    @staticmethod
    def _threshold(shared: str | None, apart: float, same_place: float) -> float:
        """The similarity two messages (or clusters) need: a named company or case alone makes one issue;
        the same estate, school or road needs the messages to say alike things, less alike than strangers."""
        if shared == "company":
            return 0.0
        return apart if shared is None else same_place

    def _changed(self, cluster_id: int) -> None:
        self._rows.pop(cluster_id, None)
        self._index.stale.add(cluster_id)

    def _add_places(self, cluster: Cluster, found: Iterable[Place], times: int = 1) -> None:
        found = list(found)
        cluster.add_places(found, times)
        for p in found:
            if p.kind == "company":
                self._by_company.setdefault(p.name, set()).add(cluster.id)

    def _forget(self, cluster: Cluster) -> None:
        """Drop a cluster (pruned, or merged into another)."""
        del self.clusters[cluster.id]
        self._changed(cluster.id)
        self._labelling.pop(cluster.id, None)
        for p in cluster.places:
            if p.kind == "company" and (ids := self._by_company.get(p.name)) is not None:
                ids.discard(cluster.id)
                if not ids:
                    del self._by_company[p.name]

    def _matches(self, x: sp.csr_matrix, active: list[Cluster]) -> list[list[tuple[int, float]]]:
        """For each row of `x`, the active clusters whose centroid (as the batch found it) it matches at
        >= threshold, as (cluster id, cosine) in id order: the order in which ties are decided."""
        index = self._index
        threshold = min(self.config.threshold, self.config.place_threshold)
        out: list[list[tuple[int, float]]] = [[] for _ in range(x.shape[0])]
        fresh = [c for c in active if c.id in index.stale or c.id not in index.column]
        if len(fresh) > max(256, len(active) // 4):
            index.build(active, *self._centroids(active))
            fresh = []
        if index.ids:
            live = {c.id for c in active} - index.stale
            usable = np.fromiter((cid in live for cid in index.ids), dtype=bool, count=len(index.ids))
            sims = (x @ index.features).tocsr()
            rows = np.repeat(np.arange(x.shape[0]), np.diff(sims.indptr))
            values = sims.data / index.norms[sims.indices]
            hit = (values >= threshold) & usable[sims.indices]
            for row, col, value in zip(rows[hit], sims.indices[hit], values[hit], strict=True):
                out[row].append((index.ids[col], value))
        if fresh:
            cents, norms = self._centroids(fresh)
            sims_fresh = (x @ cents.T).toarray() / np.maximum(norms, 1e-12)[None, :]
            for row, col in zip(*np.nonzero(sims_fresh >= threshold), strict=True):
                out[row].append((fresh[col].id, sims_fresh[row, col]))
        for found in out:
            found.sort(key=lambda match: match[0])
        return out

    def prune(self, before: datetime) -> int:
        """Forget clusters whose last message is older than `before` (bounded memory in the service)."""
        old = [c for c in self.clusters.values() if c.end < before]
        for c in old:
            self._forget(c)
            self._seen.difference_update(m.id for m in c.members)
        return len(old)

    def consolidate(self) -> int:
        """Merge clusters the one-pass assignment split (it never revisits a decision); returns merges.

        Clusters of two or more messages whose centroids match at >= `merge_threshold`, whose districts
        agree and whose spans lie within `window_days` of each other are merged, most similar pairs first.
        """
        multi = [c for c in self.clusters.values() if len(c.members) >= 2]
        if len(multi) < 2:
            return 0
        cents, norms = self._centroids(multi)
        cents = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ cents)
        sims = sp.triu(cents @ cents.T, k=1).tocoo()
        keep = sims.data >= min(self.config.merge_threshold, self.config.place_merge_threshold)
        pairs = sorted(zip(sims.data[keep], sims.row[keep], sims.col[keep], strict=True), reverse=True)
        # Clusters naming the same company or case merge however little else they share.
        paired = {(a, b) for _, a, b in pairs}
        named = [i for i, c in enumerate(multi) if any(p.kind == "company" for p in c.places)]
        pairs += [
            (0.0, a, b)
            for a in named
            for b in named
            if a < b and (a, b) not in paired and _names_company(multi[a], list(multi[b].places))
        ]
        window = timedelta(days=self.config.window_days)
        merged = 0
        alive = {c.id: c for c in multi}
        owner = {c.id: c.id for c in multi}

        def root(i: int) -> int:
            while owner[i] != i:
                i = owner[i]
            return i

        for sim, a, b in pairs:
            ra, rb = root(multi[a].id), root(multi[b].id)
            if ra == rb:
                continue
            ca, cb = alive[ra], alive[rb]
            if not _compatible(ca.district, cb.district):
                continue
            a_places, b_places = list(ca.places), list(cb.places)
            if place_names.different_places(a_places, b_places):
                continue
            same = place_names.shared(a_places, b_places)
            if sim < self._threshold(same, self.config.merge_threshold, self.config.place_merge_threshold):
                continue
            if ca.start - cb.end > window or cb.start - ca.end > window:
                continue
            features, weights = self._row(cb)
            ca.join(cb.members, features, weights)
            ca.district = ca.district or cb.district
            for p, n in cb.places.items():
                self._add_places(ca, [p], n)
            self._changed(ca.id)
            self._forget(cb)
            owner[rb] = ra
            del alive[rb]
            merged += 1
        return merged

    def issues(self, *, now: datetime | None = None, top: int | None = None) -> list[Issue]:
        """Clusters of at least `min_messages`, hottest first."""
        scored = [
            (self._heat(c, now), c)
            for c in self.clusters.values()
            if len(c.members) >= self.config.min_messages
        ]
        scored.sort(key=lambda hc: (-hc[0], hc[1].start))
        idf = np.log((1.0 + self.n_docs) / (1.0 + self.df)) + 1.0
        kept, self._labelling = self._labelling, {}
        issues = []
        for heat, c in scored[:top]:
            labelling = self._labelling[c.id] = kept.get(c.id) or _Labelling()
            issues.append(self._issue(c, heat, self._caught_up(c, labelling), idf))
        return issues

    def labelled(self, min_messages: int) -> list[tuple[int, Cluster, str]]:
        """Every cluster of at least `min_messages`, with its label."""
        out = []
        for c in self.clusters.values():
            if len(c.members) >= min_messages:
                labelling = self._labelling.get(c.id) or _Labelling()
                out.append((c.id, c, _label(self._central(c, labelling))))
        return out

    def _caught_up(self, cluster: Cluster, labelling: _Labelling) -> _Labelling:
        """`labelling` with the members that joined the cluster since (members only ever join at the end)."""
        new = cluster.members[labelling.counted :]
        if new:
            tf = self._vectors_readonly(new)
            labelling.rows = tf if labelling.rows is None else sp.vstack([labelling.rows, tf], format="csr")
            for m in new:
                _count_grams(features_text(m), labelling.grams)
            labelling.counted = len(cluster.members)
        return labelling

    def _heat(self, cluster: Cluster, now: datetime | None) -> float:
        if cluster.volume_heat is None:
            cluster.volume_heat = _volume_heat(cluster)
        heat = cluster.volume_heat
        if now is not None:
            age_days = max(0.0, (now - cluster.end).total_seconds() / 86400)
            heat *= 0.5 ** (age_days / self.config.half_life_days)
        return heat

    def _issue(self, cluster: Cluster, heat: float, labelling: _Labelling, idf: np.ndarray) -> Issue:
        members = sorted(cluster.members, key=lambda m: m.created_at)
        return Issue(
            label=_label(self._central(cluster, labelling)),
            heat=heat,
            start=members[0].created_at,
            end=members[-1].created_at,
            message_ids=[m.id for m in members],
            district=cluster.district,
            likes=cluster.likes,
            authors=len(cluster.authors),
            keywords=self._keywords(labelling.grams, idf),
            place=cluster.place_key,
        )

    def _central(self, cluster: Cluster, labelling: _Labelling) -> Message:
        """The member closest to the centroid (the earliest of equally close ones). The centroid moves
        only when members join, so it is found again only then."""
        members = cluster.members
        if cluster.central is None or cluster.central[0] != len(members):
            rows = self._caught_up(cluster, labelling).rows
            cents, _ = self._centroids([cluster])
            scores = (rows @ cents.T).toarray().ravel()
            by_time = sorted(range(len(members)), key=lambda i: members[i].created_at)
            cluster.central = (len(members), members[by_time[int(np.argmax(scores[by_time]))]])
        return cluster.central[1]

    def _vectors_readonly(self, messages: Sequence[Message]) -> sp.csr_matrix:
        tf = self.vectorizer.transform([features_text(m) for m in messages]).tocsr()
        tf.data = 1.0 + np.log(tf.data)
        return tf

    def _keywords(self, grams: dict[str, int], idf: np.ndarray, k: int = 5) -> list[str]:
        """The character bigrams and trigrams (`grams`: how often the members say each) that weigh most
        in the centroid, longest first when tied."""
        names = list(grams)
        hashed = self.vectorizer.transform(names).tocsr() if names else sp.csr_matrix((0, N_FEATURES))
        scored = []
        for row, g in enumerate(names):
            cols = hashed.indices[hashed.indptr[row] : hashed.indptr[row + 1]]
            weight = float(idf[cols].max()) if len(cols) else 0.0
            scored.append((grams[g] * weight * len(g), g))
        scored.sort(reverse=True)
        chosen: list[str] = []
        for _, g in scored:
            if not any(g in c or c in g for c in chosen):
                chosen.append(g)
            if len(chosen) == k:
                break
        return chosen


@dataclass
class _Labelling:
    """What labelling a cluster needs from its first `counted` members: their term-frequency rows, in the
    order they joined (to find the most central), and how often they say each character n-gram (for the
    keywords)."""

    counted: int = 0
    rows: sp.csr_matrix | None = None
    grams: dict[str, int] = field(default_factory=dict)


def _count_grams(text: str, grams: dict[str, int]) -> None:
    for n in (3, 2):
        for i in range(len(text) - n + 1):
            g = text[i : i + n]
            if " " not in g:
                grams[g] = grams.get(g, 0) + 1


class _Index:
    """Centroids as one features x clusters matrix, so that a batch's similarities are one sparse product.

    Rebuilding it costs a pass over every centroid, so it is rebuilt only when a quarter of the active
    clusters have changed or started since; until then the clusters in `stale` are left out of it and a
    batch compares with their current centroids apart.
    """

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.column: dict[int, int] = {}
        self.stale: set[int] = set()
        self.features = sp.csr_matrix((N_FEATURES, 0))
        self.norms = np.zeros(0)

    def build(self, clusters: Sequence[Cluster], centroids: sp.csr_matrix, norms: np.ndarray) -> None:
        self.ids = [c.id for c in clusters]
        self.column = {cid: col for col, cid in enumerate(self.ids)}
        self.stale = set()
        self.features = centroids.T.tocsr()
        self.norms = np.maximum(norms, 1e-12)


def _volume_heat(cluster: Cluster) -> float:
    n, authors = len(cluster.members), len(cluster.authors)
    volume = authors + 0.5 * (n - authors)
    concentration = math.sqrt(max(cluster.weeks.values()) / n)
    return volume * (1.0 + math.log10(1.0 + cluster.likes)) * concentration


def _names_company(cluster: Cluster, named: list[Place]) -> bool:
    return place_names.shared(list(cluster.places), named) == "company"


def _compatible(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def _label(message: Message, limit: int = 40) -> str:
    text = (message.title or message.text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
