"""Every text exists in every language and the user's language is chosen sensibly."""

import string

from shared.texts import TEXTS, language, text


def test_every_language_has_every_key_with_the_same_placeholders():
    english = TEXTS["en"]
    for lang, texts in TEXTS.items():
        assert set(texts) == set(english), lang
        for key, template in texts.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
            assert fields == {f for _, f, _, _ in string.Formatter().parse(english[key]) if f}


def test_language_choice_falls_back_to_english():
    assert language("ru") == language("ru-RU") == "ru"
    assert language("en-GB") == language("de") == language(None) == language("") == "en"
    assert text("send_photo", "ru") != text("send_photo", "fr") == text("send_photo")
