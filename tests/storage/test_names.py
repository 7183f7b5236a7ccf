"""Company-name cores and similarity (storage.names), the rules behind the similar-name warning."""

from __future__ import annotations

import pytest

from storage.names import NameIndex, core, similar


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("广东省深圳市华信科技有限公司", "华信科技"),
        ("上海市华信科技股份有限公司", "华信科技"),
        ("华信科技（中国）有限公司", "华信科技"),
        ("华信科技(北京)有限公司", "华信科技"),
        ("华信科技(四川成都)有限责任公司", "华信科技"),
        ("北京华信科技集团", "华信科技"),
        ("内蒙古包头稀土贸易集团有限公司", "稀土贸易"),
        ("中国石油", "中国石油"),  # 中国 as a brand, not a place before one
        ("有限公司", "有限公司"),  # nothing but the legal form: the name itself
        ("Acme Trading Co., Ltd.", "acmetrading"),
        ("Shanghai Acme Trading Limited", "acmetrading"),
        ("ACME TRADING CO LTD", "acmetrading"),
        ("The Bright Star Group Holdings", "brightstar"),
        ("Ｑｉａｎｇ Trading", "qiangtrading"),
        ("Hong Kong Meridian Industrial Ltd", "meridianindustrial"),
        ("QA Trading N44X", "qatradingn44x"),
    ],
)
def test_the_core_of_a_name(name: str, expected: str) -> None:
    assert core(name) == expected


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("QA Trading N44X", "QA Trading N0X", False),
        ("QA Trading N44X", "QA Trading N044X", True),  # the same number
        ("测试客户12号", "测试客户13号", False),
        ("华信科技有限公司", "广东省深圳市华信科技有限公司", True),
        ("华信科技", "宏达科技", False),
        ("华信科技", "华信物流", False),
        ("Bright Star Machinery", "Brigth Star Machinery", True),
        ("Bright Star Machinery", "Bright Sun Machinery", False),
        ("Cedar Nova Technology", "Cedar Technology", False),
        ("华信科技有限公司", "华新科技", True),  # a homophone: how a pinyin IME mistypes
        ("深圳市鑫源电子有限公司", "新源电子", True),
        ("华信科技", "华达科技", False),
        ("测试客户12号", "测试客户12号", True),
    ],
)
def test_similar(a: str, b: str, same: bool) -> None:
    assert similar(a, b) is same
    assert similar(b, a) is same


def test_an_index_returns_the_most_alike_first_and_at_most_the_limit() -> None:
    index = NameIndex.of(
        [(1, "华信科技有限公司"), (2, "深圳华信科技"), (3, "宏达机械"), (4, "华信科技(中国)")]
    )
    assert sorted(index.similar_to("华信科技股份有限公司")) == [1, 2, 4]
    assert len(index.similar_to("华信科技", limit=2)) == 2
    assert NameIndex().similar_to("华信科技") == []
