"""The bot's profile: its command menu and descriptions, as Bot API calls.

Telegram shows them before the first message (the description in the empty chat, the
short one on the profile page and in shared links, the commands in the menu), per
`language_code`: the English texts are set without one, for every language without its
own. `infra/webhook.sh set` makes these calls; `python -m functions.bot_profile` prints
them, one `METHOD<TAB>JSON` line each (JSON in ASCII, so shells quote it plainly).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from functions.webhook_updates import TEXT_COMMANDS
from shared.texts import DEFAULT_LANGUAGE, TEXTS, text

# Telegram's limits (Bot API: BotCommand, setMyDescription, setMyShortDescription).
MAX_COMMAND_DESCRIPTION = 256
MAX_DESCRIPTION = 512
MAX_SHORT_DESCRIPTION = 120

Call = tuple[str, dict[str, Any]]


def profile_calls() -> list[Call]:
    """setMyCommands, setMyDescription and setMyShortDescription for every language."""
    calls: list[Call] = []
    for language in sorted(TEXTS, key=lambda lang: lang != DEFAULT_LANGUAGE):
        scope = {} if language == DEFAULT_LANGUAGE else {"language_code": language}
        commands = [{"command": name, "description": text(f"command_{name}", language)}
                    for name in TEXT_COMMANDS]
        calls += [("setMyCommands", {"commands": commands, **scope}),
                  ("setMyDescription", {"description": text("description", language),
                                        **scope}),
                  ("setMyShortDescription",
                   {"short_description": text("short_description", language), **scope})]
    for method, params in calls:
        _check_lengths(method, params)
    return calls


def _check_lengths(method: str, params: dict[str, Any]) -> None:
    """Telegram refuses longer texts; refused here, before a deployment is half-done."""
    lengths = [(f"/{c['command']}", len(c["description"]), MAX_COMMAND_DESCRIPTION)
               for c in params.get("commands", [])]
    lengths += [(key, len(params[key]), limit) for key, limit in
                (("description", MAX_DESCRIPTION), ("short_description", MAX_SHORT_DESCRIPTION))
                if key in params]
    for what, length, limit in lengths:
        if not 0 < length <= limit:
            raise ValueError(f"{method} {params.get('language_code', '')}: {what} has "
                             f"{length} characters, Telegram takes 1-{limit}")


def main() -> int:
    for method, params in profile_calls():
        print(f"{method}\t{json.dumps(params, ensure_ascii=True, separators=(',', ':'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
