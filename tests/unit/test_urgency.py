from __future__ import annotations

import pytest

from services.classifier.cues import cue_text
from services.classifier.urgency import urgency_of


@pytest.mark.parametrize(
    ("text", "level", "cue"),
    [
        # The sentence that went to the 24 h queue: an object and a state of a gas leak, no fixed phrase.
        ("燃气管道好像泄漏了，闻到很浓的煤气味", "emergency", "combo:煤气+味"),
        ("楼道里煤气泄漏了，请马上派人", "emergency", "combo:煤气+泄漏"),
        ("厂房着火了，浓烟很大", "emergency", "keyword:着火"),
        ("电梯坏了有人被困在里面", "emergency", "keyword:被困"),
        ("I smell gas in the hallway of our building", "emergency", "combo:gas+smell"),
        ("The gas smells really strong in the stairwell", "emergency", "combo:gas+smells"),
        ("Smoke is pouring out of the apartment next door", "emergency", "combo:smoke+pouring"),
        ("A child fell into the pond", "emergency", "combo:child+fell into"),
        ("Someone is trapped in the elevator at 5 Oak Street", "emergency", "keyword:trapped"),
        ("The old warehouse roof collapsed this morning", "emergency", "keyword:collapsed"),
        # words outside the first lexicon (set C's misses)
        ("有个醉汉躺在马路中间不动了", "emergency", "combo:醉汉+躺在马路"),
        ("学生在江里游泳，一个人不见了", "emergency", "combo:江+不见了"),
        ("The balcony on the second floor just gave way", "emergency", "combo:floor+gave way"),
        ("商场门口的雨棚塌下来了", "emergency", "combo:棚+塌"),
        ("The water in our home is chest high and my kids are with me", "emergency", "combo:kids+chest high"),
        ("There's a car burning at the gas station pump", "emergency", "combo:car+burning"),
        ("A cyclist was hit by a truck and is lying in the road", "emergency", "keyword:was hit by"),
        ("小孩的头卡在栏杆里拔不出来", "emergency", "combo:小孩+卡在"),
        ("燃汽管子漏了，整个单元都是味", "emergency", "combo:燃汽+漏"),  # 汽 for 气, a common misspelling
        ("我儿子被开水烫伤了一大片", "emergency", "keyword:烫伤"),
        ("Someone got pushed onto the tracks at the station", "emergency", "keyword:onto the tracks"),
        (
            "The pole is leaning and the wires are almost touching the ground",
            "emergency",
            "combo:wires+touching the ground",
        ),
        ("小区停水三天了", "utilities", "keyword:停水"),
        ("家里没有暖气，老人冻病了", "utilities", "keyword:没有暖气"),
        ("Power outage on the whole block since noon", "utilities", "keyword:power outage"),
        ("We have no heating and it is freezing", "utilities", "keyword:no heating"),
        ("拆迁补偿款多年没有到位", "complex", "keyword:拆迁补偿"),
        ("This pothole has been there for years", "complex", "keyword:for years"),
        ("路灯坏了", "general", "none"),
        ("The bus was late", "general", "none"),
    ],
)
def test_cues(text: str, level: str, cue: str) -> None:
    result = urgency_of(text, None)
    assert (result.level, result.cue) == (level, cue)


def test_spelling_variants_are_normalised_before_matching() -> None:
    assert cue_text("煤 氣 洩 漏，ＧＡＳ Leak") == "煤气泄漏,gas leak"
    assert urgency_of("煤 氣 洩 漏", None).level == "emergency"
    assert urgency_of("廚房裡著火了", None).cue == "keyword:着火"
    assert urgency_of("I SMELL GAS!!", None).level == "emergency"


def test_emergency_outranks_other_levels() -> None:
    assert urgency_of("停电多年了，今天电线着火", None).level == "emergency"


@pytest.mark.parametrize(
    ("text", "cue"),
    [
        ("煤气没有泄漏", "negation:combo:煤气+泄漏"),
        ("检查过了，没有煤气泄漏，只是想问换表的事", "negation:combo:煤气+泄漏"),
        ("There is no gas leak, just a smell of paint", "negation:combo:gas+leak"),
        ("The gas is not leaking any more", "negation:combo:gas+leaking"),
        ("上周燃气泄漏了，已经修好了", "resolved:combo:燃气+泄漏"),
        ("去年楼里失火过一次", "past:keyword:失火"),
        ("如何预防燃气泄漏？", "hypothetical:combo:燃气+泄漏"),
        ("What should we do if there is a gas leak?", "hypothetical:combo:gas+leak"),
        ("社区组织了火灾逃生演练", "prevention:keyword:火灾"),
        # a mistaken belief, a near miss, harmless sources of a hazard (a phrase is taken back by those of the
        # hazard whose object or state it overlaps: "collapsed" is a state of collapse)
        ("刚才以为着火了，其实是邻居在熏腊肉", "negation:keyword:着火"),
        ("围墙差点倒了，吓死人", "negation:combo:墙+倒了"),
        ("路面有一条小裂缝，下雨会积水", "explained:combo:路面+裂缝"),
        ("Our family is trapped in a bureaucratic nightmare", "explained:keyword:trapped"),
        ("THEY ARE BURNING CONSTRUCTION DEBRIS IN THE BACK YARD.", "explained:keyword:are burning"),
        ("COLLAPSED GARAGE CONSTRUCTION DEBRIS INCLUDING INSULATION.", "explained:keyword:collapsed"),
        ("不是着火，是隔壁在熏腊肉，冒烟吓人一跳", "negation:keyword:着火"),
        ("上回着火消防车进不来，通道到现在还是堵着", "past:keyword:着火"),
        ("Saw on the news there was a gas explosion in another city", "prevention:keyword:explosion"),
        ("前天晚上的火灾把我家的窗户熏黑了，谁来赔", "past:keyword:火灾"),
        ("The engineer replaced the leaking gas valve", "resolved:combo:gas+leaking"),
        ("Someone is burning incense in the courtyard and it's very smoky", "explained:keyword:is burning"),
        ("Our tap water smells of chlorine", "explained:combo:chlorine+smells"),
        ("Tangled cables hanging between the old buildings look ugly", "explained:combo:cables+hanging"),
        # the sentence denies the hazard after the cue, a past told by 过 after any term, a joke, a drill,
        # a report of something already dealt with
        ("闻到一股煤气味，师傅查过了，没有泄漏，是下水道的味", "negation:combo:煤气+味"),
        ("I smelled gas earlier, the engineer checked and there is no leak", "negation:combo:gas+smelled"),
        ("那个厂子着过火，现在又堆满了纸箱", "past:combo:火+着"),
        ("去年楼道里失火了，现在又堆满了杂物", "past:keyword:失火"),
        ("这菜辣得我嘴巴着火了哈哈", "figurative:keyword:着火"),
        ("下周化工厂做氯气泄漏演习", "prevention:combo:氯气+泄漏"),
        ("The fire in the bin has been dealt with", "resolved:keyword:fire in"),
    ],
)
def test_cues_taken_back_say_why(text: str, cue: str) -> None:
    assert (urgency_of(text, None).level, urgency_of(text, None).cue) == ("general", cue)


def test_what_takes_a_cue_back_reaches_only_its_clause_or_sentence() -> None:
    assert urgency_of("昨天没有问题。今天燃气泄漏了", None).level == "emergency"
    assert urgency_of("上周就漏过一次，现在燃气又泄漏了", None).level == "emergency"
    assert urgency_of("I'm not sure what it is, but I smell gas", None).level == "emergency"
    assert urgency_of("不知道是不是煤气泄漏，味道很大", None).level == "emergency"
    assert urgency_of("烟一直不停地往外冒", None).level == "emergency"
    # a near miss or a state too common to be the hazard denies nothing elsewhere in the sentence
    assert urgency_of("广告牌掉下来了，差点砸到人", None).level == "emergency"
    assert urgency_of("仓库起火了，还有两个人没出来", None).level == "emergency"
    assert urgency_of("The house is on fire and nobody is answering", None).level == "emergency"
    assert urgency_of("上周反映的漏电到现在还在漏电", None).level == "emergency"
    assert urgency_of("火烧过来了，快跑", None).level == "emergency"


def test_phrases_that_only_look_like_cues() -> None:
    assert urgency_of("The fire exit at the mall is blocked", None).level == "general"
    assert urgency_of("消防通道被堵，存在火灾隐患", None).level == "general"
    assert urgency_of("Kids set off fireworks every night", None).level == "general"
    assert urgency_of("楼下饭店油烟很呛", None).level == "general"
    assert urgency_of("The gas station on Main St charges too much", None).level == "general"
    assert urgency_of("一氧化碳报警器在哪里买", None).cue == "none"
    assert urgency_of("Where can I get a free carbon monoxide alarm", None).cue == "none"


def test_category_sets_a_floor_when_no_cue_fires() -> None:
    assert urgency_of("水压不太稳定", "utilities").cue == "category:utilities"
    assert urgency_of("水压不太稳定", "utilities").level == "utilities"
    assert urgency_of("水压不太稳定", "environment").level == "general"
    assert urgency_of("", None) == urgency_of("", None)
    assert urgency_of("", None).level == "general"


@pytest.mark.parametrize(
    ("text", "urgent"),
    [
        # Odour complaints go to the environment department: a smell alone is not a 1-hour emergency...
        ("STRONG CHEMICAL ODORS COMING FROM FACILITY", False),
        ("Chemical smell near the plant again tonight", False),
        ("化工厂那边一股刺鼻的化学味道", False),
        # ... a gas smell is (the gas utility's rule), and so is a toxic gas, a release, or people made ill.
        ("THE AIR SMELLS LIKE GAS ON OUR BLOCK", True),
        ("小区里闻到很浓的氨气味", True),
        ("A tanker is leaking some chemical onto the road", True),
        ("Strong chemical odor and people nearby are coughing", True),
        ("车间里有股刺鼻的气味，工人都头晕了", True),
        # Chronic: the same smell every night is a pollution complaint even when it makes people ill.
        ("The smell makes me dizzy every night", False),
    ],
)
def test_chemical_smells_are_acute_only_with_a_release_or_illness(text: str, urgent: bool) -> None:
    assert (urgency_of(text, None).level == "emergency") == urgent, urgency_of(text, None)


def test_stuck_in_a_dispute_is_no_emergency_but_a_dispute() -> None:
    assert urgency_of("I'm stuck in a dispute with my landlord about the deposit", None).level == "complex"
