"""How answers become values: parsing and checking each kind of field.

Every failure carries a reason code; the bot turns it into a sentence with an example in the
user's language (`invalid.<code>` and `example.<code>` messages).
"""

from __future__ import annotations

import re
from datetime import date, datetime

import phonenumbers

from storage import dates

PHONE_REGION = "CN"
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_URL = re.compile(r"^(https?://)?[A-Za-z0-9.-]+\.[A-Za-z]{2,}(/\S*)?$")


class Invalid(ValueError):
    """An answer that cannot be accepted; `code` names the reason, `limit` a bound if any,
    `earliest` and `latest` the range a date must lie in (as the user reads them)."""

    def __init__(
        self,
        code: str,
        *,
        limit: int | None = None,
        earliest: str | None = None,
        latest: str | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.limit = limit
        self.earliest = earliest
        self.latest = latest


# Control characters (C0, DEL, C1) except tab and new line: NUL is refused by PostgreSQL, the
# rest only garble cards and lists. A lone carriage return becomes a new line.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(value: str) -> str:
    """Typed text without control characters, before any other check."""
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


# Plausible dates (SPEC section 8: a wrong date is explained and asked again). Nothing in the
# archive happened before 2000; a birthday is after 1900; a follow-up is planned at most
# FOLLOWUP_YEARS ahead. Far-off years would otherwise pass and then fail in arithmetic.
EARLIEST_RECORD = date(2000, 1, 1)
EARLIEST_BIRTHDAY = date(1900, 1, 1)
FOLLOWUP_YEARS = 5


def years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def text(value: str, *, max_len: int) -> str:
    value = printable(value).strip()
    if not value:
        raise Invalid("empty")
    if len(value) > max_len:
        raise Invalid("too_long", limit=max_len)
    return value


def phone(value: str) -> str:
    """One phone number in E.164 (`+8613812345678`); mainland numbers need no prefix."""
    try:
        parsed = phonenumbers.parse(value.strip(), PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise Invalid("phone") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise Invalid("phone")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phones(value: str) -> list[str]:
    """One or more phone numbers separated by commas, semicolons, slashes or new lines."""
    parts = [p for p in re.split(r"[,，;；/、\n]+", value) if p.strip()]
    if not parts:
        raise Invalid("phone")
    if len(parts) > 5:
        raise Invalid("too_many", limit=5)
    result: list[str] = []
    for part in parts:
        number = phone(part)
        if number not in result:
            result.append(number)
    return result


def format_phone(value: str) -> str:
    """How people read a stored number: national format at home, international abroad."""
    try:
        parsed = phonenumbers.parse(value, PHONE_REGION)
    except phonenumbers.NumberParseException:
        return value
    if phonenumbers.region_code_for_number(parsed) == PHONE_REGION:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def email(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not _EMAIL.match(value):
        raise Invalid("email")
    return value.lower()


def website(value: str) -> str:
    value = value.strip()
    if len(value) > 200 or not _URL.match(value):
        raise Invalid("website")
    return value


def bank_account(value: str) -> str:
    """A bank account number: 8 to 34 digits, spaces and dashes ignored."""
    digits = re.sub(r"[\s-]+", "", value)
    if not digits.isdigit() or not 8 <= len(digits) <= 34:
        raise Invalid("account_no")
    return digits


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def tax_number(value: str) -> str:
    """统一社会信用代码: 18 characters from its alphabet, the last one a check character."""
    code = re.sub(r"\s+", "", value).upper()
    if len(code) != 18 or any(c not in USCC_CHARS for c in code):
        raise Invalid("tax_no_format")
    if uscc_check_char(code[:17]) != code[17]:
        raise Invalid("tax_no_check")
    return code


def day(
    value: str,
    *,
    today: date,
    past_ok: bool = True,
    future_ok: bool = True,
    earliest: date | None = None,
    latest: date | None = None,
) -> date:
    """A calendar date as people type it (storage.dates: 2026-12-01, 12月1日, +7, 明天, 下周一,
    "in 3 days", ...), between `earliest` and `latest` when given. Words that could mean either
    way (周五, 12/1) are read in the question's direction: the past when the future is refused,
    the future when the past is."""
    prefer: dates.Direction = "past" if not future_ok else "future" if not past_ok else None
    try:
        result = dates.parse_day(value, today=today, prefer=prefer)
    except dates.NotADate as exc:
        raise Invalid("date") from exc
    return in_range(
        result, today=today, past_ok=past_ok, future_ok=future_ok, earliest=earliest, latest=latest
    )


def in_range(
    result: date,
    *,
    today: date,
    past_ok: bool = True,
    future_ok: bool = True,
    earliest: date | None = None,
    latest: date | None = None,
) -> date:
    """`result` if it lies where the question allows, else `Invalid` saying where it must."""
    if not past_ok and result < today:
        raise Invalid("date_past")
    if not future_ok and result > today:
        raise Invalid("date_future")
    if (earliest is not None and result < earliest) or (latest is not None and result > latest):
        raise Invalid(
            "date_range",
            earliest=earliest.isoformat() if earliest else None,
            latest=latest.isoformat() if latest else None,
        )
    return result


def parse_iso_date(value: str) -> date:
    return datetime.strptime(value, "%Y-%m-%d").date()


_CN_MOBILE = re.compile(r"\+861\d{10}")


def mask_phone(value: str) -> str:
    """`+8613812345678` → `138****5678`; a landline keeps its trunk 0 (`057****4321`).

    A mainland mobile number reads as its 11 digits: masked without parsing it (an export
    masks 100,000 of them; phonenumbers takes ~50 µs each)."""
    if _CN_MOBILE.fullmatch(value):
        return f"{value[3:6]}****{value[-4:]}"
    digits = re.sub(r"\D", "", format_phone(value))
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def mask_tail(value: str, keep: int = 4) -> str:
    """`6222020200112233` → `**** 2233`."""
    value = value.replace(" ", "")
    return "****" if len(value) <= keep else f"**** {value[-keep:]}"


def mask_text(value: str) -> str:
    """A name or address: first character, then stars."""
    return value[:1] + "*" * min(max(len(value) - 1, 1), 6)
