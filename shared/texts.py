"""Everything the bot says, in English and Russian; English is the fallback.

Keys are stable names; `text(key, language_code, **values)` picks the user's language
from Telegram's `language_code` ("ru", "ru-RU", "en-GB", ...).
"""

from __future__ import annotations

DEFAULT_LANGUAGE = "en"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "start": (
            "Hi! Send me a photo of a face and I will tell you which celebrities it "
            "looks like.\n\n/help – how it works\n/privacy – what happens to your photo"),
        "help": (
            "Send a photo (or an image file) with one or more faces. For every face I "
            "name the three celebrities it looks most like, with a score: 70% means the "
            "face is closer to that celebrity than 70% of people are to their own best "
            "look-alike among my celebrities. A face that close to a celebrity's photos "
            "that it may be them is said so.\n\n"
            "Tips: a clear, well-lit face looking at the camera works best.\n"
            "In groups, mention me in the photo's caption or reply to a photo with "
            "/lookalike."),
        "privacy": (
            "Your photo is only used to answer you: it is downloaded from Telegram, "
            "looked at in memory and forgotten. Nothing is stored — no photo, no face "
            "data. Only the id of the update is kept for a day so that you get exactly "
            "one answer.\n\n"
            "The celebrities' pictures come from free sources such as Wikimedia Commons; "
            "every answer credits the picture it shows."),
        "removal": ("Are you in the gallery and want to be removed? Write to {contact} "
                    "with the name or the Wikidata id you are listed under: you will be "
                    "taken out of the gallery and left out of every later one."),
        "removal_no_contact": ("Are you in the gallery and want to be removed? Ask the "
                               "operator of this bot: you will be taken out of the gallery "
                               "and left out of every later one."),
        "send_photo": "Please send me a photo with a face in it.",
        # The bot's profile (infra/webhook.sh set): shown before the first message.
        "description": (
            "Which celebrities do you look like? Send a photo with one or more faces and "
            "I will name the closest look-alikes of each, with a similarity score and a "
            "picture. Photos are looked at in memory and never stored."),
        "short_description": "Send a photo: I will tell you which celebrities you look like.",
        "command_start": "Start: what this bot does",
        "command_help": "How it works, and tips for a good photo",
        "command_privacy": "What happens to your photo",
        "group_reply_needed": "Reply to a photo with /lookalike and I will look at it.",
        "file_too_large": "This file is over 20 MB, too large for me to download. "
                          "Please send it as a photo instead.",
        "result_title": "Looks like:",
        "result_face": "Face {number}:",
        "result_themself": "this may be {name} themself",
        "result_more_faces": "…and {count} more faces.",
        "credit": "Photo:",
        "credit_numbered": "Photo {numbers}:",
        "credit_source": "source",
        "no_match": "I found a face, but I have no celebrities to compare it with yet.",
        "no_face": ("I could not find a face in this photo. Please send a clear, "
                    "well-lit photo of a face looking at the camera."),
        "unreadable_image": ("I could not read this image. Please send a photo "
                             "(JPEG, PNG, WebP, HEIC or AVIF)."),
        "image_too_large": ("This image has too many pixels for me. Please send it as a "
                            "photo, or a smaller image."),
        "download_failed": "I could not download this photo. Please send it again.",
        # Buttons under an answer (shared/followups.py) and what pressing them may get.
        "button_women": "Women only",
        "button_men": "Men only",
        "button_everyone": "Everyone",
        "button_more": "More",
        "button_unknown": "This button is not one of mine any more. Send me a photo.",
        "button_too_old": "This answer is too old to change. Please send the photo again.",
        "button_photo_gone": ("I cannot see the photo this answer is about any more. "
                              "Please send it again."),
        "photo_gone": ("Telegram no longer gives me the photo this answer is about. "
                       "Please send it again."),
        "no_match_view": "No look-alikes of this kind in my gallery.",
        "not_ready": ("I am not ready to look at photos yet. Please try again in a few "
                      "minutes."),
        # Photos and button presses share one quota (functions/quota.py); a press's
        # notice is an answerCallbackQuery alert, at most 200 characters.
        "photo_quota": ("That is {limit} photos and button presses in {minutes} minutes, as "
                        "many as I can look at for one chat. Please send the next ones in a "
                        "few minutes."),
        "press_quota": ("That is {limit} photos and button presses in {minutes} minutes, as "
                        "many as I can look at for one chat. Please press again in a few "
                        "minutes."),
    },
    "ru": {
        "start": (
            "Привет! Пришлите фото лица, и я скажу, на каких знаменитостей оно похоже."
            "\n\n/help – как это работает\n/privacy – что происходит с вашим фото"),
        "help": (
            "Пришлите фото (или изображение файлом) с одним или несколькими лицами. Для "
            "каждого лица я назову трёх самых похожих знаменитостей и степень сходства: "
            "70% значит, что лицо ближе к этой знаменитости, чем 70% людей к своему самому "
            "похожему двойнику среди моих знаменитостей. Если лицо так близко к фото "
            "знаменитости, что это может быть она сама, я так и скажу.\n\n"
            "Совет: лучше всего подходит чёткое, хорошо освещённое лицо, смотрящее в камеру.\n"
            "В группах упомяните меня в подписи к фото или ответьте на фото командой "
            "/lookalike."),
        "privacy": (
            "Ваше фото используется только для ответа: оно скачивается из Telegram, "
            "обрабатывается в памяти и забывается. Ничего не хранится — ни фото, ни данных "
            "о лице. Только номер сообщения хранится сутки, чтобы вы получили ровно один "
            "ответ.\n\n"
            "Фотографии знаменитостей взяты из свободных источников, например с Викисклада; "
            "в каждом ответе указано, чья это фотография и на каких условиях она "
            "используется."),
        "removal": ("Вы есть в галерее и хотите, чтобы вас оттуда убрали? Напишите на "
                    "{contact}, указав имя или идентификатор Викиданных, под которым вы "
                    "значитесь: вас уберут из галереи и не включат ни в одну следующую."),
        "removal_no_contact": ("Вы есть в галерее и хотите, чтобы вас оттуда убрали? "
                               "Напишите владельцу этого бота: вас уберут из галереи и не "
                               "включат ни в одну следующую."),
        "send_photo": "Пожалуйста, пришлите фото с лицом.",
        "description": (
            "На каких знаменитостей вы похожи? Пришлите фото с одним или несколькими "
            "лицами, и я назову самых похожих знаменитостей для каждого лица, со степенью "
            "сходства и картинкой. Фото обрабатываются в памяти и не хранятся."),
        "short_description": "Пришлите фото, и я скажу, на каких знаменитостей вы похожи.",
        "command_start": "Начало: что умеет этот бот",
        "command_help": "Как это работает и какое фото подходит лучше",
        "command_privacy": "Что происходит с вашим фото",
        "group_reply_needed": "Ответьте на фото командой /lookalike, и я его посмотрю.",
        "file_too_large": "Этот файл больше 20 МБ, я не могу его скачать. "
                          "Пожалуйста, пришлите его как фото.",
        "result_title": "Похоже на:",
        "result_face": "Лицо {number}:",
        "result_themself": "возможно, это {name} собственной персоной",
        "result_more_faces": "…и ещё лиц: {count}.",
        "credit": "Фото:",
        "credit_numbered": "Фото {numbers}:",
        "credit_source": "источник",
        "no_match": "Я нашёл лицо, но мне пока не с кем его сравнить.",
        "no_face": ("Я не нашёл лица на этом фото. Пришлите чёткое, хорошо освещённое "
                    "фото лица, смотрящего в камеру."),
        "unreadable_image": ("Не получается прочитать это изображение. Пришлите фото "
                             "(JPEG, PNG, WebP, HEIC или AVIF)."),
        "image_too_large": ("В этом изображении слишком много пикселей. Пришлите его как "
                            "фото или изображение поменьше."),
        "download_failed": "Не получилось скачать это фото. Пришлите его ещё раз.",
        "button_women": "Только женщины",
        "button_men": "Только мужчины",
        "button_everyone": "Все",
        "button_more": "Ещё",
        "button_unknown": "Эта кнопка больше не работает. Пришлите фото.",
        "button_too_old": "Этот ответ слишком старый. Пришлите фото ещё раз.",
        "button_photo_gone": "Я больше не вижу фото, к которому этот ответ. Пришлите его ещё раз.",
        "photo_gone": ("Telegram больше не отдаёт фото, к которому этот ответ. "
                       "Пришлите его ещё раз."),
        "no_match_view": "В моей галерее нет похожих такого рода.",
        "not_ready": ("Я пока не готов смотреть фото. Попробуйте, пожалуйста, через "
                      "несколько минут."),
        "photo_quota": ("Это уже {limit} фото и нажатий кнопок за {minutes} минут — "
                        "столько я могу посмотреть для одного чата. Пожалуйста, пришлите "
                        "следующие через несколько минут."),
        "press_quota": ("Это уже {limit} фото и нажатий кнопок за {minutes} минут — "
                        "столько я могу посмотреть для одного чата. Пожалуйста, нажмите "
                        "ещё раз через несколько минут."),
    },
}


def language(language_code: str | None) -> str:
    """The supported language closest to Telegram's `language_code`."""
    base = (language_code or "").split("-")[0].split("_")[0].lower()
    return base if base in TEXTS else DEFAULT_LANGUAGE


def privacy_text(language_code: str | None, contact: str) -> str:
    """/privacy: what happens to a user's photo, and how a person in the gallery asks to
    be removed (at `contact`, the `LOOKALIKE_CONTACT` setting, when there is one)."""
    removal = (text("removal", language_code, contact=contact) if contact
               else text("removal_no_contact", language_code))
    return f"{text('privacy', language_code)}\n\n{removal}"


def text(key: str, language_code: str | None = None, **values: object) -> str:
    """The text `key` in the user's language (English when missing), formatted."""
    template = TEXTS[language(language_code)].get(key) or TEXTS[DEFAULT_LANGUAGE][key]
    return template.format(**values) if values else template
