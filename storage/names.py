"""When two company names are the same company: the similar-name warning of /new and imports.

Names are compared by their core: full-width forms folded, the legal form (有限公司,
股份有限公司, 集团, Co., Ltd., Inc.) and the place (北京, 上海市, 广东省深圳市, (中国), Shanghai)
taken off, brackets and punctuation dropped. Two cores are similar when their edit distance
ratio is high, and never when they carry different numbers: "QA Trading N44X" and
"QA Trading N0X" share a prefix, not a company. rapidfuzz's WRatio, used before, scores a
shared prefix as a match (its partial ratio), which warned on most names of one naming scheme.

Chinese names are typed with a pinyin input method, so the usual typo is a homophone (华新 for
华信): two Chinese cores that read the same in pinyin (tones aside) are similar too. pypinyin's
character table gives the readings (the first of a character's readings).

tests/bench/similar_names.py measures the false alarms and misses on a generated corpus.
"""

from __future__ import annotations

import math
import re
import unicodedata
from array import array
from bisect import bisect_left
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from functools import cache

from rapidfuzz import fuzz, process

# edit-distance ratio (0-100) two cores need; tuned with tests/bench/similar_names.py. Chinese
# cores are short (华信科技): one character off is another company as often as a typo, so
# they must agree all but one character in ten; Latin ones may differ by a letter in eight.
SIMILAR_CUTOFF = 92
SIMILAR_CUTOFF_CJK = 90
SHORTEST_CORE = 2  # a core shorter than this is no evidence: the whole name is compared

_PROVINCES = [
    "北京",
    "天津",
    "上海",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
]
_CITIES = [
    "深圳",
    "广州",
    "杭州",
    "南京",
    "苏州",
    "无锡",
    "宁波",
    "温州",
    "厦门",
    "福州",
    "泉州",
    "青岛",
    "济南",
    "烟台",
    "潍坊",
    "大连",
    "沈阳",
    "长春",
    "哈尔滨",
    "石家庄",
    "唐山",
    "太原",
    "郑州",
    "洛阳",
    "武汉",
    "长沙",
    "南昌",
    "合肥",
    "成都",
    "贵阳",
    "昆明",
    "西安",
    "兰州",
    "西宁",
    "银川",
    "乌鲁木齐",
    "拉萨",
    "呼和浩特",
    "包头",
    "南宁",
    "桂林",
    "海口",
    "三亚",
    "东莞",
    "佛山",
    "珠海",
    "中山",
    "惠州",
    "汕头",
    "常州",
    "南通",
    "徐州",
    "扬州",
    "嘉兴",
    "绍兴",
    "金华",
    "台州",
    "义乌",
    "昆山",
    "江阴",
    "张家港",
    "芜湖",
    "保定",
    "廊坊",
    "淄博",
    "临沂",
    "济宁",
    "襄阳",
    "宜昌",
    "株洲",
    "岳阳",
    "绵阳",
    "遵义",
    "大理",
    "宝鸡",
    "柳州",
    "鄂尔多斯",
]
_PLACES_EN = [
    "china",
    "beijing",
    "tianjin",
    "shanghai",
    "chongqing",
    "hebei",
    "shanxi",
    "liaoning",
    "jilin",
    "heilongjiang",
    "jiangsu",
    "zhejiang",
    "anhui",
    "fujian",
    "jiangxi",
    "shandong",
    "henan",
    "hubei",
    "hunan",
    "guangdong",
    "hainan",
    "sichuan",
    "guizhou",
    "yunnan",
    "shaanxi",
    "gansu",
    "qinghai",
    "taiwan",
    "inner mongolia",
    "guangxi",
    "tibet",
    "ningxia",
    "xinjiang",
    "hong kong",
    "macau",
    "macao",
    "shenzhen",
    "guangzhou",
    "hangzhou",
    "nanjing",
    "suzhou",
    "wuxi",
    "ningbo",
    "wenzhou",
    "xiamen",
    "fuzhou",
    "qingdao",
    "jinan",
    "dalian",
    "shenyang",
    "changchun",
    "harbin",
    "shijiazhuang",
    "taiyuan",
    "zhengzhou",
    "wuhan",
    "changsha",
    "nanchang",
    "hefei",
    "chengdu",
    "guiyang",
    "kunming",
    "xi'an",
    "xian",
    "lanzhou",
    "urumqi",
    "nanning",
    "haikou",
    "dongguan",
    "foshan",
    "zhuhai",
    "zhongshan",
    "baotou",
]
_PLACE = "|".join(sorted({*_PROVINCES, *_CITIES}, key=len, reverse=True))
# a place at the start: 广东省深圳市, 上海市, 北京, 中国; a district after a city (南山区)
_LEADING_PLACE = re.compile(rf"^(?:中国)?(?:(?:{_PLACE})(?:省|市|自治区|特别行政区)?)+")
_LEADING_PLACE_EN = re.compile(
    r"^(?:(?:" + "|".join(sorted(_PLACES_EN, key=len, reverse=True)) + r")(?![a-z])\s*)+"
)
# a bracketed place anywhere: (中国), (北京), (Shanghai)
_BRACKETED_PLACE = re.compile(
    rf"[(\[]\s*(?:(?:中国|{_PLACE}|"
    + "|".join(sorted(_PLACES_EN, key=len, reverse=True))
    + r")(?:省|市|自治区)?\s*)+[)\]]"
)
_LEGAL_ZH = re.compile(
    r"(?:集团)?(?:股份有限公司|有限责任公司|有限公司|股份公司|总公司|公司)$|集团$|(?:有限|股份)$"
)
_LEGAL_EN = re.compile(
    r"(?:\b(?:co|company|corp|corporation|inc|incorporated|ltd|limited|llc|plc|gmbh|ag|sa|"
    r"group|holdings?|pte|pvt|bv|nv|srl|spa)\b\.?\s*)+$"
)
_NOT_WORD = re.compile(r"[^\w]+")
_NUMBER = re.compile(r"\d+")


def core(name: str) -> str:
    """The part of a company name that tells it apart: `广东省深圳市华信科技有限公司` → `华信科技`,
    `Acme Trading Co., Ltd.` → `acmetrading`."""
    text = unicodedata.normalize("NFKC", name).lower().strip()
    text = text.replace("（", "(").replace("）", ")").replace("【", "[").replace("】", "]")
    text = _BRACKETED_PLACE.sub(" ", text)
    text = re.sub(r"[,.&'\"()\[\]{}<>/\\:;!?·・\-_+]", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    previous = None
    while previous != text:
        previous = text
        text = _LEGAL_EN.sub("", text).strip()
        text = _LEGAL_ZH.sub("", text.replace(" ", "") if _is_cjk(text) else text).strip()
        text = _LEADING_PLACE.sub("", text).strip()
        text = _LEADING_PLACE_EN.sub("", text).strip()
        text = re.sub(r"^the\s+", "", text)
    core_text = _NOT_WORD.sub("", text)
    if len(core_text) < SHORTEST_CORE:  # the name was all place and legal form
        return _NOT_WORD.sub("", unicodedata.normalize("NFKC", name).lower())
    return core_text


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


@cache
def _pinyin_table() -> dict[int, str]:
    """pypinyin's character table, imported on first use: loading it takes about 2 s, which
    would otherwise delay the bot's start."""
    from pypinyin.pinyin_dict import pinyin_dict  # lazy on purpose: see above

    return pinyin_dict


@cache
def _reading(char: str) -> str:
    """A character's pinyin without tones (信 → xin); other characters as they are."""
    readings = _pinyin_table().get(ord(char))
    if not readings:
        return char
    spelled = unicodedata.normalize("NFKD", readings.split(",")[0])
    return "".join(c for c in spelled if not unicodedata.combining(c))


def sound(core_text: str) -> str:
    """How a core reads aloud, for homophone typos: `华新科技` and `华信科技` → `hua xin ke ji`."""
    return " ".join(_reading(char) for char in core_text)


def _numbers(core_text: str) -> tuple[str, ...]:
    return tuple(sorted(n.lstrip("0") or "0" for n in _NUMBER.findall(core_text)))


def similar(a: str, b: str) -> bool:
    """Whether two company names look like the same company."""
    return NameIndex.of([(0, b)]).similar_to(a) == [0]


@dataclass
class NameIndex:
    """The names of one team's customers, cored once, to look many names up in."""

    keys: list[Hashable] = field(default_factory=list)
    cores: list[str] = field(default_factory=list)
    numbers: list[tuple[str, ...]] = field(default_factory=list)
    sounds: dict[str, list[int]] = field(default_factory=dict)  # Chinese cores by reading

    @classmethod
    def of(cls, names: Iterable[tuple[Hashable, str]]) -> NameIndex:
        index = cls()
        for key, name in names:
            index.add(key, name)
        return index

    def add(self, key: Hashable, name: str) -> None:
        core_text = core(name)
        if _is_cjk(core_text):
            self.sounds.setdefault(sound(core_text), []).append(len(self.cores))
        self.keys.append(key)
        self.cores.append(core_text)
        self.numbers.append(_numbers(core_text))

    def similar_to(self, name: str, *, limit: int | None = None) -> list[Hashable]:
        """Keys of the names like `name`, most alike first (at most `limit`)."""
        if not self.cores:
            return []
        wanted = core(name)
        numbers = _numbers(wanted)
        cutoff = SIMILAR_CUTOFF_CJK if _is_cjk(wanted) else SIMILAR_CUTOFF
        positions = [
            position
            for _match, _score, position in process.extract(
                wanted, self.cores, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None
            )
        ]
        if _is_cjk(wanted):  # homophones after the spelled-alike, most alike first
            positions += [p for p in self.sounds.get(sound(wanted), []) if p not in positions]
        found: list[Hashable] = []
        for position in positions:
            if self.numbers[position] != numbers:
                continue  # N44X and N0X: another company of the same naming scheme
            found.append(self.keys[position])
            if limit is not None and len(found) >= limit:
                break
        return found


class _Length:
    """The cores of one length, under sorted keys (customer id * 2, + 1 for a short name)."""

    __slots__ = ("cores", "keys")

    def __init__(self) -> None:
        self.keys: array[int] = array("q")
        self.cores: list[str] = []


class TeamNames:
    """One team's names cored once and kept, patched one customer at a time (storage.
    duplicate_names keeps them in step with the database): `similar_to` gives exactly the
    answers of a `NameIndex` built afresh from the same customers in id order.

    Cores are grouped by length: an edit ratio of 90 or more needs lengths within a tenth of
    each other (and a homophone has the length of the name it sounds like), so a check scores
    only the few lengths that can reach the cutoff. Compact on purpose (a company may have
    1,000,000 customers): per name an 8-byte key in an array and its core; Chinese cores also
    under their reading. Numbers are taken from the few candidates.
    """

    __slots__ = ("lengths", "size", "sounds")

    def __init__(self) -> None:
        self.lengths: dict[int, _Length] = {}
        self.sounds: dict[str, array[int]] = {}  # reading of a Chinese core -> keys
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def put(self, customer_id: int, names_of: Iterable[str | None]) -> None:
        """Set a customer's names (name, short name; empty ones skipped), replacing old ones."""
        self.drop(customer_id)
        for slot, name in enumerate(names_of):
            if not name:
                continue
            core_text = core(name)
            key = customer_id * 2 + slot
            group = self.lengths.get(len(core_text))
            if group is None:
                group = self.lengths[len(core_text)] = _Length()
            at = bisect_left(group.keys, key)
            group.keys.insert(at, key)
            group.cores.insert(at, core_text)
            self.size += 1
            if _is_cjk(core_text):
                self.sounds.setdefault(sound(core_text), array("q")).append(key)

    def drop(self, customer_id: int) -> None:
        """Forget a customer's names (destroyed, moved to another team, or about to change)."""
        for group in self.lengths.values():
            at = bisect_left(group.keys, customer_id * 2)
            while at < len(group.keys) and group.keys[at] // 2 == customer_id:
                core_text = group.cores[at]
                if _is_cjk(core_text):
                    reading = sound(core_text)
                    holders = self.sounds.get(reading)
                    if holders is not None and group.keys[at] in holders:
                        holders.remove(group.keys[at])
                        if not holders:
                            del self.sounds[reading]
                del group.keys[at]
                del group.cores[at]
                self.size -= 1

    def similar_to(self, name: str, *, limit: int | None = None) -> list[int]:
        """Ids of the customers whose names are like `name`, as `NameIndex.similar_to`."""
        if not self.size:
            return []
        wanted = core(name)
        numbers = _numbers(wanted)
        cjk = _is_cjk(wanted)
        cutoff = SIMILAR_CUTOFF_CJK if cjk else SIMILAR_CUTOFF
        # ratio = 100 * (1 - distance / (a + b)) and distance >= |a - b|
        share = (100 - cutoff) / 100
        length = len(wanted)
        low = math.ceil(length * (1 - share) / (1 + share))
        high = math.floor(length * (1 + share) / (1 - share))
        scored: list[tuple[float, int, str]] = []
        for size in range(low, high + 1):
            group = self.lengths.get(size)
            if group is None:
                continue
            for found_core, score, at in process.extract(
                wanted, group.cores, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None
            ):
                scored.append((-score, group.keys[at], found_core))
        scored.sort()  # most alike first, then in the order of a fresh index (by key)
        candidates = [(key, found_core) for _score, key, found_core in scored]
        if cjk:  # homophones after the spelled-alike, in the order of a fresh index
            reading = sound(wanted)
            seen = {key for key, _core in candidates}
            group = self.lengths.get(length)
            homophones = []
            for key in sorted(set(self.sounds.get(reading, ())) - seen):
                at = bisect_left(group.keys, key) if group is not None else 0
                if (
                    group is not None
                    and at < len(group.keys)
                    and group.keys[at] == key
                    and sound(group.cores[at]) == reading
                ):
                    homophones.append((key, group.cores[at]))
            candidates += homophones
        found: list[int] = []
        for key, found_core in candidates:
            if _numbers(found_core) != numbers:
                continue  # N44X and N0X: another company of the same naming scheme
            found.append(key // 2)
            if limit is not None and len(found) >= limit:
                break
        return found
