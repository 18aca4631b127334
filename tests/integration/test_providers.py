"""Several providers (THREADWISE_PROVIDERS): `/ai model` moves a conversation to a second OpenAI-compatible
endpoint, which gets the model name unchanged and its own key; a reasoning model's thinking is neither shown
nor stored, and its tokens are priced."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bots.bootstrap import Core, open_core
from core.db.models import Message, UsageRecord
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.settings import SettingsError, load_settings
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.support import RecordingReplier

KEY = ConversationKey("slack", "T1", "C1", "1700000000.000100")
ADA = ChatUser("slack", "U0ADA", "ada")


@pytest.fixture
async def llama() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="llama-key") as fake:
        yield fake


@pytest.fixture
async def core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, llama: FakeOpenAI
) -> AsyncIterator[Core]:
    providers = {
        "llama": {"base_url": llama.base_url, "api_key": "llama-key", "timeout": 30, "max_retries": 0},
        "llamb": {"base_url": "http://127.0.0.1:9/v1", "api_key": "never"},  # a prefix that does not match
    }
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "THREADWISE_MODELS": "gpt-4o-mini,llama3",
        "THREADWISE_PROVIDERS": json.dumps(providers),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with open_core(load_settings(env_file=None)) as composed:
        yield composed


async def turn(core: Core, text: str, event: str) -> RecordingReplier:
    replier = RecordingReplier()
    await core.turns.handle(IncomingMessage(KEY, ADA, text, event, datetime.now(UTC)), replier)
    return replier


async def test_ai_model_moves_the_conversation_to_the_second_endpoint(
    core: Core, fake_openai: FakeOpenAI, llama: FakeOpenAI
) -> None:
    await turn(core, "first question", "e1")
    await core.commands.set_model(ADA, KEY, "llama3")
    llama.script(Reply(text="from llama"))
    replier = await turn(core, "second question", "e2")

    assert replier.finished == ["from llama"]
    [openai_request] = [r for r in fake_openai.requests if r.path == "/v1/chat/completions"]
    [llama_request] = [r for r in llama.requests if r.path == "/v1/chat/completions"]
    assert openai_request.headers["authorization"] == "Bearer test-key"
    assert openai_request.json["model"] == "gpt-4o-mini"
    assert llama_request.headers["authorization"] == "Bearer llama-key"
    assert llama_request.json["model"] == "llama3"
    history = [m["content"] for m in llama_request.json["messages"][1:]]
    assert "first question" in str(history)  # the conversation moved, its history with it
    assert all(r.path != "/v1/moderations" for r in llama.requests)  # moderation stays on the default


async def test_thinking_is_neither_shown_nor_stored_but_priced(core: Core, llama: FakeOpenAI) -> None:
    await core.commands.set_model(ADA, KEY, "llama3")
    llama.script(
        Reply(
            text="<think>secret plan: add them</think>\n\nThe answer is 4.",
            reasoning="secret reasoning",
            completion_tokens=500,
            chunk_chars=3,
        )
    )
    replier = await turn(core, "what is 2+2?", "e1")
    shown = [value for kind, value in replier.events if kind in ("update", "finish")]
    assert shown and shown[-1] == "The answer is 4."
    assert not any("secret" in text or "think" in text for text in shown)

    async with core.database.reader() as session:
        stored = (await session.execute(select(Message.content))).scalars().all()
        usage = (await session.execute(select(UsageRecord))).scalars().one()
    assert "secret" not in json.dumps(stored, default=str) and "The answer is 4." in json.dumps(stored)
    assert usage.output_tokens == 500 and usage.cost_micros > 0  # the thinking's tokens are paid for

    await turn(core, "and 3+3?", "e2")
    assert "secret" not in json.dumps(llama.chat_requests()[-1]["messages"])


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not json", "THREADWISE_PROVIDERS must be a JSON object"),
        ('{"llama": {"api_key": "sk-secret-1"}}', "THREADWISE_PROVIDERS['llama']: base_url"),
        ('{"llama": {"base_url": "http://x/v1", "timeout": -1}}', "timeout must be a positive"),
        ('{"llama": {"base_url": "http://x/v1", "key": "sk-secret-1"}}', "unknown key(s) key"),
    ],
)
def test_bad_providers_are_refused_naming_the_setting(value: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, threadwise={"providers": value})
    assert problem in str(caught.value)
    assert "sk-secret-1" not in str(caught.value)


async def test_each_provider_has_its_own_retries_and_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, llama: FakeOpenAI
) -> None:
    """llama: no retries, so one failing answer is the user's error at once; mistral: two retries and a
    0.3-second timeout, so a request that never answers is given up on and tried again (three requests in
    all) long before the first-token watchdog (60 s here) or the default endpoint's settings would; the
    default endpoint keeps THREADWISE_OPENAI_MAX_RETRIES."""
    from tests.fakes.openai_api import Fault, Silent

    async with FakeOpenAI(api_key="mistral-key") as mistral:
        providers = {
            "llama": {"base_url": llama.base_url, "api_key": "llama-key", "max_retries": 0},
            "mistral": {
                "base_url": mistral.base_url,
                "api_key": "mistral-key",
                "timeout": 0.3,
                "max_retries": 2,
            },
        }
        env = {
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": fake_openai.base_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
            "THREADWISE_MODELS": "gpt-4o-mini,llama3,mistral-small",
            "THREADWISE_PROVIDERS": json.dumps(providers),
            "THREADWISE_OPENAI_MAX_RETRIES": "1",
            "THREADWISE_OPENAI_TIMEOUT": "60",
            "THREADWISE_FIRST_TOKEN_TIMEOUT": "60",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        async with open_core(load_settings(env_file=None)) as core:
            fake_openai.script(Fault(503), Reply(text="default, on the second try"))
            assert (await turn(core, "q1", "e1")).finished == ["default, on the second try"]

            await core.commands.set_model(ADA, KEY, "llama3")
            llama.script(Fault(503), Reply(text="never sent"))
            failed = await turn(core, "q2", "e2")
            assert failed.finished == [] and failed.errors
            assert "having problems" in failed.errors[-1].user_message

            await core.commands.set_model(ADA, KEY, "mistral-small")
            mistral.script(Silent(), Silent(), Silent())
            slow = await turn(core, "q3", "e3")
            assert slow.finished == [] and slow.errors
            assert "took too long" in slow.errors[-1].user_message

    assert len(fake_openai.chat_requests()) == 2  # THREADWISE_OPENAI_MAX_RETRIES=1
    assert len(llama.chat_requests()) == 1  # its max_retries 0
    assert len(mistral.chat_requests()) == 3  # its max_retries 2, each attempt cut by its 0.3 s timeout


async def test_the_router_picks_per_turn_and_the_cost_footer_names_the_model_that_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI, llama: FakeOpenAI
) -> None:
    """THREADWISE_ROUTER through the composed service and the real SDK: a short question goes to the cheap
    model, pasted code to the strong one (here on the second endpoint), each reply's footer names the model;
    a conversation's own `/ai model` takes it out of the router's hands."""
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "THREADWISE_MODELS": "gpt-4o-mini,llama3",
        "THREADWISE_PROVIDERS": json.dumps({"llama": {"base_url": llama.base_url, "api_key": "llama-key"}}),
        "THREADWISE_ROUTER": "gpt-4o-mini,llama3",
        "THREADWISE_COST_FOOTER": "true",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with open_core(load_settings(env_file=None)) as core:
        fake_openai.script(Reply(text="Paris."), Reply(text="Still Paris."))
        llama.script(Reply(text="Divide by something else."))
        short = await turn(core, "What's the capital of France?", "e1")
        code = await turn(core, "Why does this fail?\n```python\nprint(1/0)\n```", "e2")
        await core.commands.set_model(ADA, KEY, "gpt-4o-mini")
        chosen = await turn(core, "x = 1;\ny = 2;\nprint(x / 0);\nwhy?", "e3")  # code, but chosen

    [(short_text)] = short.finished
    [(code_text)] = code.finished
    [(chosen_text)] = chosen.finished
    assert short_text.startswith("Paris.\n\n_gpt-4o-mini · ")
    assert code_text.startswith("Divide by something else.\n\n_llama3 · ")
    assert chosen_text.startswith("Still Paris.\n\n_gpt-4o-mini · ")
    assert [r["model"] for r in fake_openai.chat_requests()] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert [r["model"] for r in llama.chat_requests()] == ["llama3"]


async def test_on_slack_ai_model_moves_the_thread_to_the_second_endpoint(
    tmp_path: Path, fake_openai: FakeOpenAI, llama: FakeOpenAI
) -> None:
    """Through slack_bolt against the Slack fake: the thread starts on the default endpoint; `/ai model
    llama3` (Slack sends no thread with a slash command: it applies to the caller's last thread) moves it,
    with its history, to the llama endpoint, which gets the model name unchanged and its own key."""
    from tests.integration.test_slack_adapter import running_slack

    providers = json.dumps({"llama": {"base_url": llama.base_url, "api_key": "llama-key"}})
    async with running_slack(
        tmp_path, fake_openai, models="gpt-4o-mini,llama3", providers=providers
    ) as slack:
        fake_openai.script(Reply(text="From the default endpoint."))
        event = await slack.mention("first question")
        await slack.command("/ai", "model llama3")
        llama.script(Reply(text="From llama."))
        await slack.message("second question", thread_ts=event["ts"])

        first_answer, changed, second_answer = slack.fake.bot_messages(thread_ts=event["ts"])
        assert first_answer.current == "From the default endpoint."
        assert "now uses" in changed.current and "llama3" in changed.current  # announced in the thread
        assert second_answer.current == "From llama."
    [first] = [r for r in fake_openai.requests if r.path == "/v1/chat/completions"]
    [second] = [r for r in llama.requests if r.path == "/v1/chat/completions"]
    assert first.json["model"] == "gpt-4o-mini" and first.headers["authorization"] == "Bearer test-key"
    assert second.json["model"] == "llama3" and second.headers["authorization"] == "Bearer llama-key"
    assert [m["content"] for m in second.json["messages"][1:]] == [
        "first question",
        "From the default endpoint.",
        "second question",
    ]
