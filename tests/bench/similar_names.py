"""False alarms and misses of the similar-name warning, before and after its tuning.

Run: `python tests/bench/similar_names.py [--seed N]`. A seeded generator makes a few thousand
distinct companies (region + brand word + industry word + legal form, Chinese and English, and
names of one numbered scheme such as "QA Trading N44X") and, for a sample of them, true variants:
the same company without its legal form, without (or with another spelling of) its place, with
a typo, with a full-width bracket. It prints

- the false-alarm rate: distinct companies warned as similar to another company of the corpus;
- the miss rate: true variants not warned as similar to their company;

for the scorer before issue 13 (rapidfuzz WRatio ≥ 88 on the raw names, as storage/customers.py
had it), for storage.names (cores compared by edit ratio, numbers must agree), and for the kept
team names /new's checks use since issue 14 (storage.names.TeamNames: the same rule, so the
same rates).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rapidfuzz import fuzz, process

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from storage import names

OLD_CUTOFF = 88  # storage/customers.py before issue 13: process.extract(..., fuzz.WRatio, 88)

ZH_PLACES = [
    "",
    "",
    "",
    "北京",
    "北京市",
    "上海",
    "上海市",
    "广东省深圳市",
    "深圳市",
    "广州市",
    "浙江省杭州市",
    "杭州",
    "江苏苏州",
    "苏州市",
    "山东省青岛市",
    "天津市",
    "重庆",
    "四川成都",
    "湖北省武汉市",
    "福建厦门",
    "内蒙古包头",
]
ZH_BRAND_CHARS = list(
    "华信宏达鑫源恒通泰盛隆兴昌瑞丰德福利新海天金永康佳美安正东方中联万和合裕润星光明诚嘉博"
    "卓越腾飞创远航宇晨益祥凯圣鼎汇富荣辉君豪立伟峰锦銮致启蓝"
)
ZH_INDUSTRIES = [
    "科技",
    "贸易",
    "机械",
    "化工",
    "电子",
    "物流",
    "建材",
    "食品",
    "医药",
    "环保科技",
    "能源",
    "纺织",
    "汽车配件",
    "电气",
    "包装",
    "印刷",
    "塑胶",
    "五金",
    "家具",
    "服饰",
    "信息技术",
    "网络科技",
    "新材料",
    "生物科技",
    "实业",
    "建设工程",
    "稀土",
    "农业发展",
]
ZH_LEGAL = ["有限公司", "有限公司", "股份有限公司", "集团有限公司", "有限责任公司", "集团", ""]
EN_PLACES = ["", "", "", "Shanghai ", "Shenzhen ", "Beijing ", "Guangzhou ", "Hong Kong "]
EN_BRANDS = [
    "Bright",
    "Golden",
    "Eastern",
    "Star",
    "Ocean",
    "Apex",
    "Summit",
    "Pioneer",
    "Silver",
    "Royal",
    "Unity",
    "Sino",
    "Pacific",
    "Global",
    "Prime",
    "Delta",
    "Nova",
    "Zenith",
    "Orient",
    "Harmony",
    "Phoenix",
    "Dragon",
    "Lotus",
    "Jade",
    "Crystal",
    "Evergreen",
    "Sunrise",
    "Horizon",
    "Vertex",
    "Titan",
    "Baotou",
    "Rare",
    "Earth",
    "Meridian",
    "Keystone",
    "Liberty",
    "Northern",
    "Southern",
    "Grand",
    "Alpha",
    "Omega",
    "Atlas",
    "Cedar",
    "Falcon",
    "Granite",
    "Harbor",
    "Ivory",
    "Jupiter",
    "Kingdom",
    "Lunar",
    "Maple",
]
EN_INDUSTRIES = [
    "Trading",
    "Machinery",
    "Chemicals",
    "Electronics",
    "Logistics",
    "Foods",
    "Textiles",
    "Industrial",
    "Technology",
    "Materials",
    "Auto Parts",
    "Packaging",
    "Pharma",
    "Energy",
    "Steel",
]
EN_LEGAL = ["Co., Ltd.", "Limited", "Inc.", "Group", "Corporation", "Ltd", ""]
SCHEMES = ["QA Trading N{n}X", "Test Customer {n}", "测试客户{n}号", "Demo Corp {n}"]


@dataclass(frozen=True)
class Company:
    name: str
    place: str
    brand: str
    industry: str
    legal: str
    english: bool


def corpus(rng: random.Random, size_zh: int, size_en: int) -> list[Company]:
    """Distinct companies: no two share brand and industry (nor a scheme number)."""
    companies: list[Company] = []
    seen: set[tuple[str, str]] = set()
    while len(seen) < size_zh:
        brand = "".join(rng.sample(ZH_BRAND_CHARS, 2))
        industry = rng.choice(ZH_INDUSTRIES)
        if (brand, industry) in seen:
            continue
        seen.add((brand, industry))
        place, legal = rng.choice(ZH_PLACES), rng.choice(ZH_LEGAL)
        if place and rng.random() < 0.15:  # 华信科技(北京)有限公司
            name = f"{brand}{industry}({place.removesuffix('市')}){legal}"
        elif rng.random() < 0.05:
            name = f"{place}{brand}{industry}(中国){legal}"
        else:
            name = f"{place}{brand}{industry}{legal}"
        companies.append(Company(name, place, brand, industry, legal, False))
    seen_en: set[tuple[str, str]] = set()
    while len(seen_en) < size_en:
        brand = " ".join(rng.sample(EN_BRANDS, rng.choice((1, 1, 2))))
        industry = rng.choice(EN_INDUSTRIES)
        if (brand, industry) in seen_en:
            continue
        seen_en.add((brand, industry))
        place, legal = rng.choice(EN_PLACES), rng.choice(EN_LEGAL)
        name = f"{place}{brand} {industry} {legal}".strip()
        companies.append(Company(name, place.strip(), brand, industry, legal, True))
    for scheme in SCHEMES:
        for n in rng.sample(range(0, 200), 40):
            companies.append(Company(scheme.format(n=n), "", scheme, str(n), "", True))
    return companies


@cache
def _homophones() -> dict[str, list[str]]:
    """Characters that read alike (tones aside): what a pinyin input method offers in a row."""
    by_sound: dict[str, list[str]] = {}
    for code in range(0x4E00, 0x9FA6):
        by_sound.setdefault(names.sound(chr(code)), []).append(chr(code))
    return by_sound


def _homophone_typo(rng: random.Random, company: Company) -> str:
    """One brand character replaced by a homophone (华新 for 华信), as a pinyin IME mistypes."""
    brand = company.brand
    at = rng.randrange(len(brand))
    others = [c for c in _homophones()[names.sound(brand[at])] if c != brand[at]]
    if not others:
        return company.name
    brand = brand[:at] + rng.choice(others) + brand[at + 1 :]
    return company.name.replace(company.brand, brand, 1)


def _typo(rng: random.Random, company: Company) -> str:
    """One wrong character in the brand: a missing or wrong letter, any other Chinese character."""
    brand = company.brand
    if company.english:
        at = rng.randrange(len(brand))
        if rng.random() < 0.5:
            brand = brand[:at] + brand[at + 1 :]
        else:
            brand = brand[:at] + rng.choice("aeioulnrst") + brand[at + 1 :]
    else:
        at = rng.randrange(len(brand))
        brand = brand[:at] + rng.choice(ZH_BRAND_CHARS) + brand[at + 1 :]
    return company.name.replace(company.brand, brand, 1)


def variants(rng: random.Random, company: Company) -> list[tuple[str, str]]:
    """(kind, name) of true variants of one company."""
    found: list[tuple[str, str]] = []
    if company.legal:
        found.append(("no legal form", company.name.replace(company.legal, "").strip()))
    if company.place:
        found.append(("no place", company.name.replace(company.place, "", 1).strip()))
    elif not company.english:
        found.append(
            ("a place added", rng.choice(["北京市", "广东省深圳市", "上海"]) + company.name)
        )
    else:
        found.append(("a place added", "Shanghai " + company.name))
    if company.english:
        found.append(("a typo (English)", _typo(rng, company)))
    else:
        found.append(("a typo (Chinese, a homophone)", _homophone_typo(rng, company)))
        found.append(("a typo (Chinese, any character)", _typo(rng, company)))
    if company.english:
        found.append(("full-width bracket", f"{company.name}（China）"))
    else:
        core = f"{company.brand}{company.industry}"
        found.append(("full-width bracket", company.name.replace(core, f"{core}（中国）", 1)))
    return [(kind, name) for kind, name in found if name and name != company.name]


def old_similar(query: str, others: list[str]) -> set[int]:
    return {
        index
        for _m, _s, index in process.extract(
            query, others, scorer=fuzz.WRatio, score_cutoff=OLD_CUTOFF, limit=None
        )
    }


def new_similar(index: names.NameIndex, query: str) -> set[int]:
    return {int(key) for key in index.similar_to(query)}  # type: ignore[call-overload]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--zh", type=int, default=2000)
    parser.add_argument("--en", type=int, default=800)
    parser.add_argument("--sample", type=int, default=600, help="companies given variants")
    parser.add_argument("--after-only", action="store_true", help="skip the slow old scorer")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    companies = corpus(rng, args.zh, args.en)
    all_names = [c.name for c in companies]
    index = names.NameIndex.of(enumerate(all_names))
    kept = names.TeamNames()  # what /new's checks use since issue 14: must print the same
    for position, name in enumerate(all_names):
        kept.put(position, (name,))
    sample = rng.sample(range(len(companies)), args.sample)
    tests = [(i, kind, name) for i in sample for kind, name in variants(rng, companies[i])]
    print(f"{len(companies)} distinct companies, {len(tests)} true variants of {len(sample)}")
    scorers = [
        ("before (WRatio ≥ 88, raw names)", lambda q: old_similar(q, all_names)),
        (
            f"after (storage.names: cores, ratio ≥ {names.SIMILAR_CUTOFF}, "
            f"Chinese ≥ {names.SIMILAR_CUTOFF_CJK} or the same pinyin, numbers agree)",
            lambda q: new_similar(index, q),
        ),
        (
            "after, kept team names (storage.names.TeamNames, issue 14)",
            lambda q: set(kept.similar_to(q)),
        ),
    ]
    for label, similar_to in scorers[1:] if args.after_only else scorers:
        started = time.perf_counter()
        alarmed = [i for i, c in enumerate(companies) if similar_to(c.name) - {i}]
        missed: dict[str, int] = {}
        per_kind: dict[str, int] = {}
        for company_index, kind, name in tests:
            per_kind[kind] = per_kind.get(kind, 0) + 1
            if company_index not in similar_to(name):
                missed[kind] = missed.get(kind, 0) + 1
        elapsed = time.perf_counter() - started
        print(f"\n{label}  ({elapsed:.1f} s)")
        print(
            f"  false alarms: {len(alarmed)}/{len(companies)} companies "
            f"({100 * len(alarmed) / len(companies):.1f}%)"
        )
        total_missed = sum(missed.values())
        print(
            f"  misses: {total_missed}/{len(tests)} variants "
            f"({100 * total_missed / len(tests):.1f}%)"
        )
        for kind, count in sorted(per_kind.items()):
            print(f"    {kind}: {missed.get(kind, 0)}/{count} missed")
        for i in alarmed[:6]:
            others = sorted(similar_to(companies[i].name) - {i})[:2]
            print(f"    e.g. {companies[i].name} ~ {', '.join(all_names[o] for o in others)}")


if __name__ == "__main__":
    main()
