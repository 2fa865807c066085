from __future__ import annotations

import pytest

from services.classifier.urgency import urgency_of


@pytest.mark.parametrize(
    ("text", "level", "cue"),
    [
        ("楼道里煤气泄漏了，请马上派人", "emergency", "keyword:煤气泄漏"),
        ("厂房着火了，浓烟很大", "emergency", "keyword:着火"),
        ("电梯坏了有人被困在里面", "emergency", "keyword:被困"),
        ("I smell gas in the hallway of our building", "emergency", "keyword:smell gas"),
        ("Someone is trapped in the elevator at 5 Oak Street", "emergency", "keyword:trapped"),
        ("The old warehouse roof collapsed this morning", "emergency", "keyword:collapsed"),
        ("小区停水三天了", "utilities", "keyword:停水"),
        ("家里没有暖气，老人冻病了", "utilities", "keyword:没有暖气"),
        ("Power outage on the whole block since noon", "utilities", "keyword:power outage"),
        ("We have no heating and it is freezing", "utilities", "keyword:no heating"),
        ("拆迁补偿款多年没有到位", "complex", "keyword:拆迁补偿"),
        ("This pothole has been there for years", "complex", "keyword:for years"),
        ("路灯坏了", "general", None),
        ("The bus was late", "general", None),
    ],
)
def test_cues(text: str, level: str, cue: str | None) -> None:
    result = urgency_of(text, None)
    assert (result.level, result.cue) == (level, cue)


def test_emergency_outranks_other_levels() -> None:
    assert urgency_of("停电多年了，今天电线着火", None).level == "emergency"


def test_negated_cues_do_not_fire() -> None:
    assert urgency_of("检查过了，没有煤气泄漏，只是想问换表的事", None).level == "general"
    assert urgency_of("There is no gas leak, just a smell of paint", None).level == "general"
    # The negation only reaches within its clause.
    assert urgency_of("昨天没有问题。今天燃气泄漏了", None).level == "emergency"


def test_phrases_that_only_look_like_cues() -> None:
    assert urgency_of("The fire exit at the mall is blocked", None).level == "general"
    assert urgency_of("消防通道被堵，存在火灾隐患", None).level == "general"
    assert urgency_of("Kids set off fireworks every night", None).level == "general"


def test_category_sets_a_floor_when_no_cue_fires() -> None:
    assert urgency_of("水压不太稳定", "utilities").cue == "category:utilities"
    assert urgency_of("水压不太稳定", "utilities").level == "utilities"
    assert urgency_of("水压不太稳定", "environment").level == "general"
    assert urgency_of("", None).level == "general"
