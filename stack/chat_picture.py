"""A picture of one of the bot's answers as a chat shows it: the photo, its caption and
the inline keyboard under it, drawn from what the local Bot API server recorded.

docs/bot.md shows such a picture, taken from the local stack by the end-to-end test.
Texts are drawn in DejaVu Sans where the system has it (any script it covers), else in
Pillow's built-in font (Latin only).
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH = 480
PAD = 12
LINE = 22
BUTTON = 40
BUBBLE = (255, 255, 255)
BACKGROUND = (209, 222, 233)
BUTTON_FILL = (94, 135, 168)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def render_answer(photo: bytes | None, caption: str,
                  reply_markup: dict[str, Any] | None) -> bytes:
    """PNG bytes of the answer: picture, caption lines and the keyboard's rows."""
    font = _font(16)
    picture = None
    if photo:
        with Image.open(io.BytesIO(photo)) as opened:
            picture = opened.convert("RGB")
        picture = picture.resize((WIDTH, round(picture.height * WIDTH / picture.width)))
    lines = caption.splitlines()
    rows = (reply_markup or {}).get("inline_keyboard", [])
    height = ((picture.height if picture else 0) + PAD + LINE * len(lines) + PAD
              + (BUTTON + 4) * len(rows) + 2 * PAD)
    canvas = Image.new("RGB", (WIDTH + 2 * PAD, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    bubble_bottom = PAD + (picture.height if picture else 0) + PAD + LINE * len(lines)
    draw.rounded_rectangle((PAD, PAD, PAD + WIDTH, bubble_bottom + PAD), 10, fill=BUBBLE)
    y = PAD
    if picture:
        canvas.paste(picture, (PAD, y))
        y += picture.height
    y += PAD
    for line in lines:
        draw.text((2 * PAD, y), line, font=font, fill=(0, 0, 0))
        y += LINE
    y = bubble_bottom + PAD + 4
    for row in rows:
        width = (WIDTH - 4 * (len(row) - 1)) / max(1, len(row))
        for number, button in enumerate(row):
            left = PAD + number * (width + 4)
            box = (left, y, left + width, y + BUTTON)
            draw.rounded_rectangle(box, 8, fill=BUTTON_FILL)
            draw.text(((box[0] + box[2]) / 2, y + BUTTON / 2), str(button.get("text", "")),
                      font=font, fill=(255, 255, 255), anchor="mm")
        y += BUTTON + 4
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
