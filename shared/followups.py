"""Follow-ups under an answer: which look-alikes it shows, and the buttons that change it.

An answer shows a `View` of the look-alikes: everyone, women only or men only (the
gallery's `sex` field), and a page (matches 1–3, 4–6 or 7–9 with the default
`top_k` of 3). The buttons under it carry the view they lead to in their callback data,
so nothing is stored per user: the worker finds the photo again from the answered
message and redraws the answer for that view, in place.

Callback data is a small versioned text, at most 64 bytes (Telegram's limit):
`la1:<a|f|m>:<page>`. Anything else (an old version, forged or over-long data) is
refused with `ForgedData`, which the webhook answers politely without a job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from shared.texts import text

MAX_CALLBACK_DATA = 64  # bytes (Bot API, InlineKeyboardButton.callback_data)
PREFIX = "la1"  # the codec's version: a new layout gets a new prefix
PAGES = 3  # "More" twice: matches 4–6, then 7–9
# The gallery's `sex` values (Wikidata's P21 labels, as the catalogue records them).
FEMALE, MALE = "female", "male"
_CODES = {"a": None, "f": FEMALE, "m": MALE}
_FORMAT = re.compile(rf"{PREFIX}:([afm]):([0-9])")


class ForgedData(ValueError):
    """Callback data this bot did not make (or no longer understands)."""


@dataclass(frozen=True)
class View:
    sex: str | None = None  # None: everyone
    page: int = 0  # 0: the first answer's matches

    def __post_init__(self) -> None:
        if self.sex not in _CODES.values() or not 0 <= self.page < PAGES:
            raise ForgedData(f"no such view: {self.sex!r}, page {self.page!r}")

    def encode(self) -> str:
        code = next(code for code, sex in _CODES.items() if sex == self.sex)
        return f"{PREFIX}:{code}:{self.page}"

    @classmethod
    def decode(cls, data: str | None) -> View:
        """The view in a button's callback data; `ForgedData` when it is not ours."""
        if not data or len(data.encode("utf-8", "surrogatepass")) > MAX_CALLBACK_DATA:
            raise ForgedData("missing or over-long callback data")
        found = _FORMAT.fullmatch(data)
        if found is None:
            raise ForgedData(f"unknown callback data {data[:MAX_CALLBACK_DATA]!r}")
        return cls(_CODES[found.group(1)], int(found.group(2)))

    def skip(self, page_size: int) -> int:
        """How many look-alikes come before this view's."""
        return self.page * page_size


FIRST_ANSWER = View()


def keyboard(view: View, has_sex: bool, has_more: bool,
             language_code: str | None) -> InlineKeyboardMarkup | None:
    """The buttons under an answer showing `view`: the other sex filters (when the gallery
    records sex; on a later page the current one too, to go back to the top) and "More"
    while there are more look-alikes. None when there is nothing to offer."""
    rows: list[list[InlineKeyboardButton]] = []
    if has_sex:
        filters = [(FEMALE, "button_women"), (MALE, "button_men"), (None, "button_everyone")]
        rows.append([InlineKeyboardButton(text(label, language_code),
                                          callback_data=View(sex).encode())
                     for sex, label in filters if sex != view.sex or view.page > 0])
    if has_more and view.page + 1 < PAGES:
        rows.append([InlineKeyboardButton(text("button_more", language_code),
                                          callback_data=View(view.sex, view.page + 1).encode())])
    return InlineKeyboardMarkup(rows) if rows else None
