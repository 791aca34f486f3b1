"""The follow-up buttons: the callback-data codec and the keyboard under an answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.followups import FIRST_ANSWER, MAX_CALLBACK_DATA, PAGES, ForgedData, View, keyboard

VIEWS = [View(sex, page) for sex in (None, "female", "male") for page in range(PAGES)]


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_round_trips_within_telegrams_limit(view):
    data = view.encode()
    assert len(data.encode()) <= MAX_CALLBACK_DATA
    assert View.decode(data) == view


def test_views_encode_as_documented():
    assert FIRST_ANSWER.encode() == "la1:a:0"
    assert View("female", 0).encode() == "la1:f:0"
    assert View("male", 2).encode() == "la1:m:2"
    assert View(None, 1).skip(3) == 3 and View(None, 2).skip(5) == 10


@pytest.mark.parametrize("data", [
    None, "", "la1", "la1:f", "la1:f:3", "la1:f:9", "la1:x:0", "la2:f:0", "la1:f:0:extra",
    " la1:f:0", "la1:f:01", "LA1:F:0", "la1:f:-1", "la1:f:٣",  # an Arabic-Indic 3
    "la1:f:0" + "x" * 60, "x" * 65, "é" * 33])
def test_forged_old_or_over_long_data_is_refused(data):
    with pytest.raises(ForgedData):
        View.decode(data)


@given(st.text(max_size=80))
def test_any_text_decodes_to_a_view_or_is_refused(data):
    try:
        view = View.decode(data)
    except ForgedData:
        return
    assert view.encode() == data


def test_a_view_cannot_be_made_outside_the_pages_or_sexes():
    with pytest.raises(ForgedData):
        View("other", 0)
    with pytest.raises(ForgedData):
        View(None, PAGES)


def _buttons(markup):
    return [[(b.text, b.callback_data) for b in row] for row in markup.inline_keyboard]


def test_the_first_answer_offers_both_sexes_and_more():
    assert _buttons(keyboard(FIRST_ANSWER, True, True, "en")) == [
        [("Women only", "la1:f:0"), ("Men only", "la1:m:0")], [("More", "la1:a:1")]]


def test_a_filtered_view_offers_the_others_and_more_of_its_own():
    assert _buttons(keyboard(View("female"), True, True, "ru")) == [
        [("Только мужчины", "la1:m:0"), ("Все", "la1:a:0")], [("Ещё", "la1:f:1")]]


def test_a_later_page_offers_every_filter_and_no_more_after_the_last():
    assert _buttons(keyboard(View("male", PAGES - 1), True, True, "en")) == [
        [("Women only", "la1:f:0"), ("Men only", "la1:m:0"), ("Everyone", "la1:a:0")]]


def test_without_sex_in_the_gallery_only_more_is_offered():
    assert _buttons(keyboard(FIRST_ANSWER, False, True, "en")) == [[("More", "la1:a:1")]]
    assert keyboard(FIRST_ANSWER, False, False, "en") is None
