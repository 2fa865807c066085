"""What counts as personal data in free text, and what does not (dates, amounts, house numbers, ids)."""

from __future__ import annotations

import pytest

from shared.pii import EMAIL, ID_CARD, PHONE, masked, phone_ref, redact

KEY = b"unit-test-caller-hash-key"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的电话是13912345678", f"我的电话是{PHONE}"),
        ("来电人要求回访 13700003333。", f"来电人要求回访 {PHONE}。"),
        ("call +86 139-1234-5678 please", f"call {PHONE} please"),
        ("号码139 1234 5678谢谢", f"号码{PHONE}谢谢"),
        ("0086 13912345678", PHONE),
        ("(+86)13912345678", PHONE),
        ("座机010-87654321转123", f"座机{PHONE}"),
        ("(0755)8888 9999", PHONE),
        ("电话（021）6666 8888。", f"电话{PHONE}。"),
        ("0571 8765 4321", PHONE),
        ("+86 10 8765 4321", PHONE),
        ("身份证11010519491231002X", f"身份证{ID_CARD}"),
        ("身份证 110105491231002", f"身份证 {ID_CARD}"),
        ("写信到 zhang.san+12345@mail.example.com.cn 吧", f"写信到 {EMAIL} 吧"),
        ("１３９１２３４５６７８", PHONE),  # full-width digits, as some input methods type them
    ],
)
def test_personal_data_is_replaced_by_a_readable_token(text: str, expected: str) -> None:
    assert masked(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28 10:30 幸福路8号3单元502室",
        "金额12000元，工单T20261128000123，订单号202611281234567890",
        "身份证110105194912310021",  # 18 digits whose check digit is wrong: not an ID card
        "邮编100010，楼高139米",
        "版本 v13912345678",  # inside an id
        "no e-mail here @ all, user@localhost",
    ],
)
def test_what_is_not_personal_data_is_left_alone(text: str) -> None:
    assert masked(text) == text


def test_each_number_given_is_kept_as_a_keyed_hash_once_in_national_form() -> None:
    said = redact("打13912345678或者+86 139 1234 5678，座机+86 10 8765 4321", KEY)
    assert said.text == f"打{PHONE}或者{PHONE}，座机{PHONE}"
    assert [p.hash for p in said.phones] == [
        phone_ref("13912345678", KEY).hash,
        phone_ref("010-87654321", KEY).hash,
    ]
    assert said.phones[0].masked == "*******5678"
    assert phone_ref("13912345678", KEY).hash != phone_ref("13912345678", b"another-key-of-16").hash
    assert redact("打13912345678").phones == ()
