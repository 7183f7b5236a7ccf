"""Fitting every text the bot sends into what Telegram accepts.

Telegram refuses a message over 4,096 characters, a caption over 1,024, a callback answer over
200 and button data over 64 bytes, counting characters as UTF-16 code units (a CJK character
of the extension planes or an emoji counts two). A refused message is never shown, so every
text is built to fit:

- a card, summary or list is composed of lines in which the long values are `Slot`s;
  `compose` shortens the slots, all to the same length, until the whole fits, so every field
  stays on the card and only the longest values lose their ends ("…");
- a list too long for one message is cut into several by `split` (or paged by its caller);
- `clip` shortens one value; `label`, `answer` and `caption` fit button labels, callback
  answers and captions.

Nothing here knows about Telegram objects: flows call these while they build their texts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
ANSWER_LIMIT = 200
DATA_BYTES = 64
LABEL_LIMIT = 40  # ours: a longer button label is unreadable on a phone anyway
ELLIPSIS = "…"
SHORTEST = 8  # a slot is not cut below this unless nothing else fits


def units(text: str) -> int:
    """The length of `text` as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """`text` if it fits in `limit` units, else its start and "…" within `limit`."""
    if units(text) <= limit:
        return text
    if limit <= 0:
        return ""
    budget = limit - 1  # the ellipsis is one unit
    kept: list[str] = []
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if width > budget:
            break
        kept.append(char)
        budget -= width
    return "".join(kept).rstrip() + ELLIPSIS


def message(text: str) -> str:
    """A text built whole (a confirmation, a notice): at most 4,096 units, its end cut."""
    return clip(text, MESSAGE_LIMIT)


def label(text: str, limit: int = LABEL_LIMIT) -> str:
    """A button label: shortened to `limit`, and never empty (Telegram refuses empty labels)."""
    text = " ".join(text.split())
    return clip(text, limit) if text else "·"


def answer(text: str) -> str:
    """A callback query's answer (toast or alert): at most 200 units."""
    return clip(text, ANSWER_LIMIT)


def caption(text: str) -> str:
    """A photo's, document's or voice note's caption: at most 1,024 units."""
    return clip(text, CAPTION_LIMIT)


@dataclass(frozen=True)
class Slot:
    """A value that may be shortened to fit; `render` puts it into its line (e.g. a template)."""

    value: str
    render: Callable[[str], str] | None = None

    def shown(self, cap: int | None) -> str:
        value = self.value if cap is None else clip(self.value, cap)
        return self.render(value) if self.render else value


Piece = str | Slot
Line = Piece | Sequence[Piece]


def _pieces(line: Line) -> Sequence[Piece]:
    return (line,) if isinstance(line, str | Slot) else line


def _render(lines: Sequence[Line], cap: int | None, sep: str) -> str:
    return sep.join(
        "".join(p.shown(cap) if isinstance(p, Slot) else p for p in _pieces(line)) for line in lines
    )


def compose(
    lines: Sequence[Line], limit: int = MESSAGE_LIMIT, sep: str = "\n", ceiling: int | None = None
) -> str:
    """Join `lines`; when too long, cut every slot to the longest common length that fits.

    Short values stay whole and every line stays, so a card keeps all its fields. Should even
    the shortest slots not fit (hundreds of lines), the text itself is cut at `limit`; lists
    that can grow without bound are paged or `split` by their callers instead. `ceiling`
    caps every slot even when the whole would fit (a list shows the start of long notes).
    """
    return fitted(lines, limit, sep, ceiling)[0]


def fitted(
    lines: Sequence[Line], limit: int = MESSAGE_LIMIT, sep: str = "\n", ceiling: int | None = None
) -> tuple[str, int | None]:
    """`compose`, and the length the slots were cut to (None: none was cut)."""
    longest = max(
        (units(p.value) for line in lines for p in _pieces(line) if isinstance(p, Slot)),
        default=0,
    )
    top = None if ceiling is None or longest <= ceiling else ceiling
    text = _render(lines, top, sep)
    if units(text) <= limit:
        return text, top
    high = longest if top is None else top  # the answer lies in [low, high)
    low = min(SHORTEST, high)
    if units(_render(lines, low, sep)) > limit:
        low = 1
    if units(_render(lines, low, sep)) > limit:
        return clip(_render(lines, low, sep), limit), low
    while high - low > 1:
        middle = (low + high) // 2
        if units(_render(lines, middle, sep)) <= limit:
            low = middle
        else:
            high = middle
    return _render(lines, low, sep), low


def split(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Cut `text` into messages of at most `limit` units, at blank lines, else line ends,
    else spaces, else anywhere; the pieces read in order and lose nothing but the breaks."""
    if units(text) <= limit:
        return [text]
    pieces: list[str] = []
    rest = text
    while units(rest) > limit:
        head = clip(rest, limit + 1)[:-1]  # the longest start that fits, without the "…"
        # the last blank line, else line end, else space in the second half; else anywhere
        cuts = (head.rfind(mark) for mark in ("\n\n", "\n", " "))
        cut = next((c for c in cuts if c > len(head) // 2), len(head))
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest.strip():
        pieces.append(rest)
    return [p for p in pieces if p.strip()]


def pages(blocks: Sequence[str], limit: int = MESSAGE_LIMIT, sep: str = "\n\n") -> list[list[int]]:
    """Group consecutive `blocks` (by index) into as few messages as fit in `limit` each."""
    groups: list[list[int]] = []
    size = 0
    for index, block in enumerate(blocks):
        width = units(block)
        if groups and size + units(sep) + width <= limit:
            groups[-1].append(index)
            size += units(sep) + width
        else:
            groups.append([index])
            size = width
    return groups
