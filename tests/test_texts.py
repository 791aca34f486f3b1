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


def test_the_quota_notices_name_presses_and_fit_an_alert():
    """Presses count against the photo quota, so both notices say so; a press's notice is
    an answerCallbackQuery alert, which Telegram cuts at 200 characters."""
    for lang, press_word in (("en", "press"), ("ru", "нажат")):
        for key in ("photo_quota", "press_quota"):
            notice = text(key, lang, limit=10, minutes=10)
            assert press_word in notice.lower(), (lang, key)
        assert len(text("press_quota", lang, limit=1000, minutes=1440)) <= 200
    assert "press again" in text("press_quota", "en", limit=10, minutes=10)
