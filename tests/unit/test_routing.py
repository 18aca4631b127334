"""The documented rule of THREADWISE_ROUTER: short, simple turns to the cheap model; long or code-heavy ones
(or with a document) to the strong one."""

from __future__ import annotations

import pytest

from core.domain.types import Attachment
from core.settings import SettingsError, load_settings
from core.turn.routing import ModelRouter
from tests.support import incoming

ROUTER = ModelRouter("cheap", "strong", long_chars=600)


def test_short_plain_questions_go_to_the_cheap_model() -> None:
    assert ROUTER.choose(incoming("What's the capital of France?", "e1")) == "cheap"
    assert ROUTER.choose(incoming("Thanks! {see you}", "e1")) == "cheap"  # one brace line is no code
    assert ROUTER.choose(incoming("a" * 600, "e1")) == "cheap"
    image = Attachment("cat.png", "image/png", b"\x89PNG")
    assert ROUTER.choose(incoming("what is this?", "e1", attachments=(image,))) == "cheap"


def test_long_or_code_heavy_turns_go_to_the_strong_model() -> None:
    assert ROUTER.choose(incoming("a" * 601, "e1")) == "strong"
    assert ROUTER.choose(incoming("fix:\n```\nx = 1\n```", "e1")) == "strong"
    pasted = "why?\nimport os\ndef main():\n    return os.getcwd()\n"
    assert ROUTER.choose(incoming(pasted, "e1")) == "strong"
    sql = "SELECT a\nFROM t;\nUPDATE t SET a = 1;"
    assert ROUTER.choose(incoming(sql, "e1")) == "strong"
    document = Attachment("notes.pdf", "application/pdf", b"%PDF-")
    assert ROUTER.choose(incoming("summarise", "e1", attachments=(document,))) == "strong"


def test_the_router_setting_names_two_models() -> None:
    assert load_settings(None, threadwise={"router": "gpt-4o-mini, gpt-4.1"}).threadwise.router == (
        "gpt-4o-mini",
        "gpt-4.1",
    )
    assert load_settings(None, threadwise={"router": ""}).threadwise.router == ()
    with pytest.raises(SettingsError, match=r"THREADWISE_ROUTER: .*cheap one then the strong one"):
        load_settings(None, threadwise={"router": "gpt-4o-mini"})
