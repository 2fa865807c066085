"""Named places as the key of an issue: extraction, and the clusterer splitting and merging by them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.insight.clusters import ClusterConfig, Clusterer, Message
from services.insight.places import Place, different_places, extract, key, places_of, shared

T0 = datetime(2019, 8, 1, 9, 0)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("A市万科魅力之城商铺无排烟管道，小区内到处油烟味", "estate:万科魅力之城"),
        ("魅力之城小区临街门面油烟直排扰民", "estate:魅力之城"),  # 临街 faces a street: not a road
        ("A3区梅溪湖看云路一师润芳园小区临街门面油烟扰民", "estate:一师润芳园"),
        ("严惩A市58车贷特大集资诈骗案保护伞", "company:58车贷"),
        ("西地省展星投资有限公司涉嫌诈骗", "company:展星投资"),
        ("关于A6区月亮岛路沿线架设110KV高压电线杆的投诉", "road:月亮岛路"),
        ("A3区观沙岭郝家坪小学何时改扩建？", "school:观沙岭郝家坪小学"),
        ("投诉小区附近搅拌站噪音扰民", None),  # "the estate near here" names no estate
        ("咨询A市人才购房及购房补贴实施办法等相关问题", None),
    ],
)
def test_the_place_a_title_names(title: str, expected: str | None) -> None:
    assert key(places_of(title, "")) == expected


def test_names_match_by_their_tail_and_companies_only_exactly() -> None:
    assert Place("estate", "万科魅力之城").matches(Place("estate", "魅力之城"))
    assert not Place("estate", "魅力之城").matches(Place("estate", "润芳园"))
    assert not Place("company", "电子商务").matches(Place("company", "商品电子商务"))
    a, b = extract("伊景园滨河苑捆绑销售车位"), extract("投诉滨河苑的霸王规定")
    assert shared(a, b) == "estate" and not different_places(a, b)
    assert different_places(extract("魅力之城小区油烟扰民"), extract("润芳园小区油烟扰民"))


def _messages(titles: list[str], district: str | None = None) -> list[Message]:
    return [
        Message(id=f"m{i}", title=t, text=t, created_at=T0 + timedelta(days=i), location=district)
        for i, t in enumerate(titles)
    ]


def _groups(clusterer: Clusterer) -> list[set[str]]:
    return sorted(({m.title for m in c.members} for c in clusterer.clusters.values()), key=len, reverse=True)


@pytest.mark.parametrize("use_places", [True, False])
def test_two_estates_with_the_same_complaint_are_two_issues(use_places: bool) -> None:
    titles = [
        "魅力之城小区临街门面油烟直排扰民",
        "润芳园小区临街门面油烟直排扰民",
        "魅力之城小区临街门面油烟扰民",
    ]
    clusterer = Clusterer(ClusterConfig(use_places=use_places))
    clusterer.add(_messages(titles))
    clusterer.consolidate()
    together = any(len(g) == 3 for g in _groups(clusterer))
    # Without places (the baseline) the near-identical wording puts both estates in one issue.
    assert together is not use_places


def test_fragments_naming_one_case_are_one_issue() -> None:
    titles = [
        "A市58车贷恶性退出立案近半年没有发过一次案情通报",
        "严惩A市58车贷特大集资诈骗案保护伞",
        "承办A市58车贷案警官应跟进关注留言",
        "A市58车贷老板跑路美国，经侦拖延办案",
    ]
    clusterer = Clusterer()
    clusterer.add(_messages(titles))
    clusterer.consolidate()
    assert _groups(clusterer) == [set(titles)]
    assert clusterer.issues()[0].place == "company:58车贷"
    baseline = Clusterer(ClusterConfig(use_places=False))
    baseline.add(_messages(titles))
    baseline.consolidate()
    assert len(baseline.clusters) > 1


def test_a_case_is_found_by_its_name_after_a_merge_and_a_prune() -> None:
    """Clusters are looked up by the companies and cases they name: the lookup follows a merge to the
    cluster that took the other in, and forgets a pruned cluster (its memory stays bounded)."""
    said = "老板跑路美国经侦拖延办案"
    clusterer = Clusterer(ClusterConfig(threshold=0.95, merge_threshold=0.3, place_threshold=0.95))
    clusterer.add(_messages([said, said]))
    clusterer.add(_messages(["", "", f"58车贷{said}", f"58车贷{said}"])[2:])
    assert len(clusterer.clusters) == 2, "too unlike at 0.95 to join one by one"
    assert clusterer.consolidate() == 1
    [kept] = clusterer.clusters
    case = "严惩58车贷特大集资诈骗案保护伞"  # shares little but the name
    clusterer.add([Message(id="m4", title=case, text=case, created_at=T0 + timedelta(days=4))])
    assert list(clusterer.clusters) == [kept] and len(clusterer.clusters[kept].members) == 5
    assert clusterer.prune(T0 + timedelta(days=10)) == 1
    clusterer.add([Message(id="m5", title=case, text=case, created_at=T0 + timedelta(days=20))])
    [new] = clusterer.clusters
    assert new != kept and clusterer._by_company == {"58车贷": {new}}
