"""The local Bot API server, driven by python-telegram-bot over real HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator

import pytest
import telegram
from PIL import Image
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter

from stack.bot_api import MAX_DOWNLOAD_BYTES, BotApiServer

TOKEN = "123456:TEST-token_abc"


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    with BotApiServer(TOKEN) as server:
        yield server


def jpeg(width: int, height: int, color: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def run(api: BotApiServer, action, token: str = TOKEN):
    async def main():
        async with telegram.Bot(token, base_url=api.url + "/bot",
                                base_file_url=api.url + "/file/bot") as bot:
            return await action(bot)

    return asyncio.run(main())


def test_get_me_and_wrong_token(api: BotApiServer) -> None:
    me = run(api, lambda bot: bot.get_me())
    assert me.id == 123456 and me.is_bot
    with pytest.raises(InvalidToken):
        run(api, lambda bot: bot.get_me(), token="123456:wrong")
    assert api.calls[-1]["status"] == 401


def test_photo_sizes_like_telegram(api: BotApiServer) -> None:
    sizes = api.add_photo(jpeg(1000, 500))
    assert [(s["width"], s["height"]) for s in sizes] == [(90, 45), (320, 160), (800, 400),
                                                         (1000, 500)]
    assert all(s["file_size"] > 0 and s["file_id"] for s in sizes)
    huge = api.add_photo(jpeg(3000, 1500))
    assert (huge[-1]["width"], huge[-1]["height"]) == (2560, 1280)
    assert len(api.add_photo(jpeg(60, 40))) == 1


def test_get_file_and_download_into_memory(api: BotApiServer) -> None:
    sizes = api.add_photo(jpeg(640, 480))

    async def fetch(bot: telegram.Bot) -> bytes:
        file = await bot.get_file(sizes[-1]["file_id"])
        assert file.file_path and file.file_size == sizes[-1]["file_size"]
        return bytes(await file.download_as_bytearray())

    data = run(api, fetch)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (640, 480)
    assert api.downloads() == 1


@pytest.mark.parametrize(("width", "height", "kind", "mode"), [
    (640, 320, "JPEG", "RGB"),  # the 320 px size decoded at half scale, 90 px from it
    (641, 321, "JPEG", "RGB"),  # no scale lands on a size: each resized from the one before
    (1000, 500, "PNG", "RGB"),  # not a JPEG: decoded once, every size resized
    (5120, 2560, "JPEG", "L"),  # 2560 and 1280 px decoded at 1/2 and 1/4; grey
    (1280, 914, "JPEG", "CMYK"),
])
def test_every_size_downloads_as_a_jpeg_of_its_reported_size(
        api: BotApiServer, width: int, height: int, kind: str, mode: str) -> None:
    picture = Image.new("RGB", (width, height), (220, 30, 30))
    picture.paste((30, 30, 220), (width // 2, 0, width, height))  # left red, right blue
    buffer = io.BytesIO()
    picture.convert(mode).save(buffer, format=kind)
    sizes = api.add_photo(buffer.getvalue())
    assert [max(s["width"], s["height"]) for s in sizes] == sorted(
        {s for s in (90, 320, 800, 1280) if s < width} | {min(width, 2560)})

    async def fetch(bot: telegram.Bot) -> list[tuple[telegram.File, bytes]]:
        files = [await bot.get_file(size["file_id"]) for size in sizes]
        return [(file, bytes(await file.download_as_bytearray())) for file in files]

    expected = picture.convert(mode).convert("RGB")
    for size, (file, data) in zip(sizes, run(api, fetch), strict=True):
        assert file.file_size == size["file_size"] == len(data)
        with Image.open(io.BytesIO(data)) as served:
            assert served.format == "JPEG"
            assert served.size == (size["width"], size["height"])
            rgb = served.convert("RGB")
        for x, source_x in ((rgb.width // 8, width // 8), (rgb.width * 7 // 8, width * 7 // 8)):
            got = rgb.getpixel((x, rgb.height // 2))
            want = expected.getpixel((source_x, height // 2))
            assert isinstance(got, tuple) and isinstance(want, tuple)
            assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 12, (size, got)


def test_a_broken_multipart_body_is_a_bad_request(api: BotApiServer) -> None:
    request = urllib.request.Request(
        f"{api.url}/bot{TOKEN}/sendPhoto", data=b"--abc\r\nContent-Disposition: form-da",
        headers={"Content-Type": "multipart/form-data; boundary=abc"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["description"] == (
        "Bad Request: can't parse multipart body")
    assert api.sent == []


def test_unknown_file_and_file_too_big(api: BotApiServer) -> None:
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        run(api, lambda bot: bot.get_file("nope"))
    big = api.add_file(b"\0" * (MAX_DOWNLOAD_BYTES + 1), "big.jpg")
    with pytest.raises(BadRequest, match=r"(?i)file is too big"):
        run(api, lambda bot: bot.get_file(big["file_id"]))


def test_send_photo_multipart_is_recorded_with_bytes(api: BotApiServer) -> None:
    picture = jpeg(64, 32)
    message = run(api, lambda bot: bot.send_photo(
        chat_id=42, photo=picture, caption="Привет 1. Someone 87%",
        reply_parameters=telegram.ReplyParameters(message_id=7,
                                                  allow_sending_without_reply=True)))
    assert isinstance(message, telegram.Message) and message.photo
    [sent] = api.wait_for_sent(1, timeout=5)
    assert sent.method == "sendPhoto" and sent.chat_id == 42 and sent.reply_to == 7
    assert sent.photo == picture and sent.caption == "Привет 1. Someone 87%"


def test_send_message_and_reply_to_message_id(api: BotApiServer) -> None:
    run(api, lambda bot: bot.send_message(chat_id=-100, text="hello", reply_to_message_id=9))
    [sent] = api.sent
    assert (sent.method, sent.chat_id, sent.reply_to, sent.text) == ("sendMessage", -100, 9,
                                                                     "hello")


def test_caption_limit_like_telegram(api: BotApiServer) -> None:
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        run(api, lambda bot: bot.send_photo(chat_id=1, photo=jpeg(8, 8), caption="x" * 1025))
    assert api.sent == []


def test_injected_429_surfaces_as_retry_after(api: BotApiServer) -> None:
    api.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        run(api, lambda bot: bot.send_message(chat_id=1, text="hi"))
    with warnings.catch_warnings():  # the type of retry_after is changing across versions
        warnings.simplefilter("ignore")
        retry_after = caught.value.retry_after
    assert getattr(retry_after, "total_seconds", lambda: retry_after)() == 3
    run(api, lambda bot: bot.send_message(chat_id=1, text="hi"))  # only the next call failed
    assert len(api.sent) == 1


def test_injected_500_surfaces_as_network_error(api: BotApiServer) -> None:
    api.fail_next("sendPhoto", 500, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError):
            run(api, lambda bot: bot.send_photo(chat_id=1, photo=jpeg(8, 8)))
    run(api, lambda bot: bot.send_photo(chat_id=1, photo=jpeg(8, 8)))
    assert [c["status"] for c in api.calls if c["method"] == "sendPhoto"] == [500, 500, 200]
    assert len(api.sent) == 1


def test_injected_403_surfaces_as_forbidden(api: BotApiServer) -> None:
    api.fail_next("sendMessage", 403)
    with pytest.raises(Forbidden, match=r"(?i)blocked"):
        run(api, lambda bot: bot.send_message(chat_id=1, text="hi"))


def test_unknown_method_and_webhook_calls(api: BotApiServer) -> None:
    def post(path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(api.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    status, body = post(f"/bot{TOKEN}/noSuchMethod", {})
    assert (status, body) == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert post("/botnotatoken/getMe", {})[0] == 404
    assert post(f"/bot{TOKEN}/setWebhook",
                {"url": "https://example.org/hook", "secret_token": "s"}) == (
        200, {"ok": True, "result": True})
    info = run(api, lambda bot: bot.get_webhook_info())
    assert info.url == "https://example.org/hook"
    assert api.webhook["secret_token"] == "s"


def test_html_parse_mode_like_telegram(api: BotApiServer) -> None:
    markup = ('1. <a href="https://ru.wikipedia.org/wiki/X?a=1&amp;b=2">Барак 😀</a> — 90%\n'
              "Photo: &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;, <b>CC&#32;BY</b>")
    sent = run(api, lambda bot: bot.send_photo(1, jpeg(64, 64), caption=markup,
                                               parse_mode="HTML"))
    visible = "1. Барак 😀 — 90%\nPhoto: <b>Tom & Jerry</b>, CC BY"
    assert sent.caption == api.sent[-1].caption == visible
    assert sent.caption_html == markup.replace("&amp;b=2", "&b=2").replace("&#32;", " ")
    assert api.sent[-1].links == [("Барак 😀", "https://ru.wikipedia.org/wiki/X?a=1&b=2")]
    assert api.sent[-1].readable.startswith(
        "1. Барак 😀 <https://ru.wikipedia.org/wiki/X?a=1&b=2> — 90%\n")
    assert [(e.type, e.offset, e.length) for e in sent.caption_entities] == [
        ("text_link", 3, 8), ("bold", 45, 5)]  # UTF-16 offsets: the emoji counts twice
    # The limit counts what is shown, not the markup.
    long_link = f'<a href="https://example.org/{"x" * 2000}">{"y" * 1024}</a>'
    run(api, lambda bot: bot.send_photo(1, jpeg(64, 64), caption=long_link,
                                        parse_mode="HTML"))
    with pytest.raises(BadRequest, match="caption is too long"):
        run(api, lambda bot: bot.send_photo(1, jpeg(64, 64), caption="😀" * 513,
                                            parse_mode="HTML"))
    for bad in ("<script>x</script>", "<b>open", "a < b", "a > b", '<a href="">x</a>',
                "<b>x</i>"):
        with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
            run(api, lambda bot, bad=bad: bot.send_message(1, bad, parse_mode="HTML"))
    plain = run(api, lambda bot: bot.send_message(1, "<b>as is</b>"))
    assert plain.text == "<b>as is</b>" and not plain.entities


def test_buttons_edits_and_callback_answers(api: BotApiServer) -> None:
    keyboard = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("More", callback_data="x:1")]])
    sent = run(api, lambda bot: bot.send_photo(chat_id=7, photo=jpeg(64, 64), caption="one",
                                               reply_markup=keyboard))
    assert sent.reply_markup == keyboard
    assert api.sent[-1].reply_markup == keyboard.to_dict()
    # A new picture and caption in place, keeping the message id.
    edited = run(api, lambda bot: bot.edit_message_media(
        chat_id=7, message_id=sent.message_id,
        media=telegram.InputMediaPhoto(jpeg(80, 60, (10, 10, 200)), caption="two")))
    assert (edited.message_id, edited.caption, edited.reply_markup) == (
        sent.message_id, "two", None)
    assert edited.photo[-1].width == 80 and api.sent[-1].method == "editMessageMedia"
    assert api.bot_message(7, sent.message_id)["caption"] == "two"
    # The same caption and keyboard again: Telegram's "not modified".
    run(api, lambda bot: bot.edit_message_caption(chat_id=7, message_id=sent.message_id,
                                                  caption="three", reply_markup=keyboard))
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        run(api, lambda bot: bot.edit_message_caption(
            chat_id=7, message_id=sent.message_id, caption="three", reply_markup=keyboard))
    api.delete_message(7, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        run(api, lambda bot: bot.edit_message_media(
            chat_id=7, message_id=sent.message_id,
            media=telegram.InputMediaPhoto(jpeg(8, 8))))
    # A callback query is answered once; an unknown one is refused.
    query = api.new_callback_query_id()
    assert run(api, lambda bot: bot.answer_callback_query(query, text="ok")) is True
    assert api.callback_answers[query] == {"text": "ok"}
    with pytest.raises(BadRequest, match=r"(?i)query ID is invalid"):
        run(api, lambda bot: bot.answer_callback_query(query))
    with pytest.raises(BadRequest, match=r"(?i)data_invalid"):
        run(api, lambda bot: bot.send_message(
            chat_id=7, text="x", reply_markup=telegram.InlineKeyboardMarkup(
                [[telegram.InlineKeyboardButton("b", callback_data="d" * 65)]])))


def test_chat_actions_and_the_profile(api: BotApiServer) -> None:
    assert run(api, lambda bot: bot.send_chat_action(chat_id=-100, action="upload_photo"))
    assert [(chat, action) for chat, action, _ in api.chat_actions] == [(-100, "upload_photo")]
    with pytest.raises(BadRequest):
        run(api, lambda bot: bot.send_chat_action(chat_id=1, action="dancing"))
    commands = [telegram.BotCommand("start", "Start"), telegram.BotCommand("help", "Help")]
    assert run(api, lambda bot: bot.set_my_commands(commands))
    assert run(api, lambda bot: bot.set_my_commands(
        [telegram.BotCommand("start", "Начало")], language_code="ru"))
    assert run(api, lambda bot: bot.set_my_description("Long", language_code="ru"))
    assert run(api, lambda bot: bot.set_my_short_description("Short"))
    assert run(api, lambda bot: bot.get_my_commands()) == tuple(commands)
    assert [c.description for c in run(api, lambda bot: bot.get_my_commands(
        language_code="ru"))] == ["Начало"]
    assert run(api, lambda bot: bot.get_my_description(language_code="ru")).description == "Long"
    assert run(api, lambda bot: bot.get_my_short_description(
        language_code="de")).short_description == "Short"
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        run(api, lambda bot: bot.set_my_commands([telegram.BotCommand("Bad-Name", "x")]))
    with pytest.raises(BadRequest):
        run(api, lambda bot: bot.set_my_short_description("x" * 121))
