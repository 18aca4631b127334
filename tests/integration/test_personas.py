"""Channel and workspace personas (`/ai-admin prompt …`): in the system message of their turns and nowhere
else, a default model that `/ai model` overrides, a narrower tool list, every change audited, non-admins
refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bots.bootstrap import Core, open_core
from core.db.models import AdminAction, PersonaRow
from core.domain.errors import BadInput, NotAuthorized
from core.domain.types import ChatUser, ConversationKey, IncomingMessage
from core.settings import load_settings
from tests.fakes.openai_api import FakeOpenAI, Reply, ToolCallSpec
from tests.rendered import slack
from tests.support import RecordingReplier

GENERAL = ConversationKey("slack", "T1", "C1", "1700000000.000100")
RANDOM = ConversationKey("slack", "T1", "C2", "1700000000.000200")
OTHER_TEAM = ConversationKey("slack", "T2", "C1", "1700000000.000300")
ADA = ChatUser("slack", "U0ADA", "ada")
ADMIN = ChatUser("slack", "U0BOSS", "boss", is_admin=True)  # a workspace admin of T1
PROMPT = "You are a helpful test assistant."


@pytest.fixture
async def core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> AsyncIterator[Core]:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": fake_openai.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
        "THREADWISE_MODELS": "gpt-4o-mini,gpt-4.1-mini",
        "THREADWISE_SYSTEM_PROMPT": PROMPT,
        "THREADWISE_ADMINS": "slack:U0OPS",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with open_core(load_settings(env_file=None)) as composed:
        yield composed


async def turn(core: Core, key: ConversationKey, text: str, event: str) -> RecordingReplier:
    replier = RecordingReplier()
    await core.turns.handle(IncomingMessage(key, ADA, text, event, datetime.now(UTC)), replier)
    return replier


async def admin(core: Core, args: str, key: ConversationKey = GENERAL, user: ChatUser = ADMIN) -> str:
    return (await slack(core).admin(user, key, "prompt", args)).text


def system_of(request: dict[str, Any]) -> str:
    first = request["messages"][0]
    assert first["role"] == "system"
    content: str = first["content"]
    return content


async def test_a_channel_persona_is_in_its_turns_and_nowhere_else(
    core: Core, fake_openai: FakeOpenAI
) -> None:
    said = await admin(core, 'set here Answer like a pirate; don\'t use "quotes".')
    assert "Persona of channel slack:T1:C1 set" in said

    await turn(core, GENERAL, "hello", "e1")
    await turn(core, RANDOM, "hello", "e2")
    await turn(core, OTHER_TEAM, "hello", "e3")
    general, random, other = fake_openai.chat_requests()
    assert system_of(general) == f'{PROMPT}\n\nIn this channel: Answer like a pirate; don\'t use "quotes".'
    assert system_of(random) == PROMPT
    assert system_of(other) == PROMPT
    assert all("pirate" not in str(r["messages"][1:]) for r in (general, random, other))

    shown = await admin(core, "show")
    assert "Answer like a pirate" in shown and "slack:U0BOSS" in shown
    assert "Persona of channel slack:T1:C1 removed" in await admin(core, "clear here")
    await turn(core, GENERAL, "hello again", "e4")
    assert system_of(fake_openai.chat_requests()[-1]) == PROMPT


async def test_the_channel_persona_beats_the_workspace_persona(core: Core, fake_openai: FakeOpenAI) -> None:
    await admin(core, "set workspace Be brief.")
    await admin(core, "set here Be a pirate.")
    await turn(core, GENERAL, "hello", "e1")
    await turn(core, RANDOM, "hello", "e2")
    await turn(core, OTHER_TEAM, "hello", "e3")
    general, random, other = fake_openai.chat_requests()
    assert system_of(general) == f"{PROMPT}\n\nIn this channel: Be a pirate."
    assert system_of(random) == f"{PROMPT}\n\nIn this workspace: Be brief."
    assert system_of(other) == PROMPT


async def test_non_admins_are_refused_and_nothing_changes(core: Core, fake_openai: FakeOpenAI) -> None:
    with pytest.raises(NotAuthorized):
        await admin(core, "set here Be a pirate.", user=ADA)
    with pytest.raises(NotAuthorized):  # a workspace admin of T1 cannot touch T2
        await admin(core, "set slack:T2:C1 Be a pirate.")
    async with core.database.reader() as session:
        assert (await session.execute(select(PersonaRow))).scalars().all() == []
        actions = (await session.execute(select(AdminAction).order_by(AdminAction.id))).scalars().all()
    assert [(a.actor_id, a.allowed) for a in actions] == [("U0ADA", False), ("U0BOSS", False)]
    await turn(core, GENERAL, "hello", "e1")
    assert system_of(fake_openai.chat_requests()[-1]) == PROMPT


async def test_every_change_is_audited(core: Core) -> None:
    await admin(core, "set here --model gpt-4.1-mini --tools calculator Be a pirate.")
    await admin(core, "show here")
    await admin(core, "clear here")
    async with core.database.reader() as session:
        actions = (await session.execute(select(AdminAction).order_by(AdminAction.id))).scalars().all()
    assert [(a.action, a.target, a.allowed) for a in actions] == [
        ("prompt.set", "slack:T1:C1", True),
        ("prompt.show", "slack:T1:C1", True),
        ("prompt.clear", "slack:T1:C1", True),
    ]
    assert actions[0].details == {"prompt": "Be a pirate.", "model": "gpt-4.1-mini", "tools": ["calculator"]}


async def test_the_persona_model_is_the_default_and_ai_model_still_wins(
    core: Core, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(BadInput, match="Unknown model"):
        await admin(core, "set here --model gpt-5-huge Be a pirate.")
    await admin(core, "set here --model gpt-4.1-mini Be a pirate.")
    await turn(core, GENERAL, "hello", "e1")
    await turn(core, RANDOM, "hello", "e2")
    assert "gpt-4.1-mini" in (await slack(core).set_model(ADA, GENERAL, "")).text  # what `/ai model` says
    await core.commands.set_model(ADA, GENERAL, "gpt-4o-mini")
    await turn(core, GENERAL, "hello again", "e3")
    assert [r["model"] for r in fake_openai.chat_requests()] == ["gpt-4.1-mini", "gpt-4o-mini", "gpt-4o-mini"]


async def test_the_persona_tool_list_narrows_the_tools(core: Core, fake_openai: FakeOpenAI) -> None:
    await turn(core, RANDOM, "hello", "e1")
    offered = {tool["function"]["name"] for tool in fake_openai.chat_requests()[-1].get("tools", [])}
    assert {"calculator", "current_time"} <= offered
    await admin(core, "set here --tools calculator Use the calculator for sums.")
    fake_openai.script(Reply(tool_calls=[ToolCallSpec("current_time")]), Reply(text="done"))
    await turn(core, GENERAL, "what time is it?", "e2")
    first, second = fake_openai.chat_requests()[-2:]
    assert [tool["function"]["name"] for tool in first["tools"]] == ["calculator"]
    assert "'current_time' is not enabled in this channel" in second["messages"][-1]["content"]


async def test_on_discord_a_channel_persona_reaches_its_threads_and_nowhere_else(tmp_path: Path) -> None:
    """Through discord.py against the Discord fake: a member is refused and nothing changes; a server
    manager's persona for #general is in the system message of `/ai chat` there and of the thread it opens
    (the thread's parent channel counts), and not in another channel's `/ai ask` nor in a DM."""
    from tests.integration.discord_harness import running_bot
    from tests.integration.test_discord_commands import answer

    async with running_bot(tmp_path, threadwise={"system_prompt": PROMPT}) as bot:
        fake = bot.discord
        member = fake.user(fake.snowflake(), "member")
        [refused] = await answer(
            bot, await fake.interact("ai-admin", "prompt", {"args": "set here Be a pirate."}, user=member)
        )
        assert refused.ephemeral and refused.content.startswith("⚠️")
        async with bot.core.database.reader() as session:
            assert (await session.execute(select(PersonaRow))).scalars().all() == []

        manager = fake.user(fake.snowflake(), "manager")
        args = {"args": "set here Answer like a pirate."}
        [done] = await answer(bot, await fake.interact("ai-admin", "prompt", args, user=manager, admin=True))
        assert done.ephemeral and f"Persona of channel discord:{fake.guild_id}:{fake.channel_id} set" in (
            done.content
        )

        bot.openai.script(Reply("Arr, Lisbon."), Reply("Arr, Sintra."), Reply("Plain."), Reply("Plain too."))
        await fake.interact("ai", "chat", {"prompt": "Plan a weekend in Lisbon"})
        thread_id = await fake.wait_for(lambda: next(iter(fake.threads), None))
        await fake.wait_for(lambda: fake.bot_messages(thread_id))
        await fake.message_create(thread_id, "And on day two?")
        await fake.wait_for(lambda: len(fake.bot_messages(thread_id)) == 2)

        random = await fake.add_text_channel("random")
        await answer(bot, await fake.interact("ai", "ask", {"prompt": "hello?"}, channel_id=random))
        dm = fake.dm_channel(fake.owner)
        await fake.message_create(dm, "hi")
        await fake.wait_for(lambda: fake.bot_messages(dm))

        opened, continued, elsewhere, private = bot.openai.chat_requests()
        pirate = f"{PROMPT}\n\nIn this channel: Answer like a pirate."
        assert system_of(opened) == pirate and system_of(continued) == pirate
        assert system_of(elsewhere) == PROMPT and system_of(private) == PROMPT
        assert all("pirate" not in str(r["messages"][1:]) for r in (opened, continued, elsewhere, private))
        async with bot.core.database.reader() as session:
            actions = (await session.execute(select(AdminAction).order_by(AdminAction.id))).scalars().all()
        assert [(a.action, a.actor_id, a.allowed) for a in actions] == [
            ("prompt", member["id"], False),  # refused before the subcommand is read
            ("prompt.set", manager["id"], True),
        ]


async def test_on_slack_personas_reach_their_channel_and_the_assistant_panel_and_a_refusal_changes_nothing(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Through slack_bolt against the Slack fake: a member's `/ai-admin prompt set` is refused and changes
    nothing; a workspace admin's channel persona is in the system message of that channel's threads only,
    and the workspace persona in the assistant panel (a DM of the workspace)."""
    from tests.integration.test_slack_adapter import running_slack

    async with running_slack(tmp_path, fake_openai, system_prompt=PROMPT) as running:
        fake = running.fake
        await running.command("/ai-admin", "prompt set workspace Be brief.", user="U0ALICE")
        [refused] = fake.responses
        assert refused["text"].startswith(":warning:") and refused["response_type"] == "ephemeral"
        await running.mention("before anything is set")
        assert system_of(fake_openai.chat_requests()[-1]) == PROMPT  # nothing changed

        await running.command("/ai-admin", "prompt set workspace Be brief.", user="U0ADMIN")
        await running.command("/ai-admin", "prompt set here Answer like a pirate.", user="U0ADMIN")
        await running.mention("hello from general")
        await running.mention("hello from random", channel="C0RANDOM")
        thread_ts = fake.next_ts()
        panel_options = {"channel": "D0ALICE", "channel_type": "im", "thread_ts": thread_ts}
        await running.message("hello from the panel", **panel_options)

        _, general, random, panel = fake_openai.chat_requests()
        assert system_of(general) == f"{PROMPT}\n\nIn this channel: Answer like a pirate."
        assert system_of(random) == f"{PROMPT}\n\nIn this workspace: Be brief."
        assert system_of(panel) == f"{PROMPT}\n\nIn this workspace: Be brief."
        async with running.core.database.reader() as session:
            actions = (await session.execute(select(AdminAction).order_by(AdminAction.id))).scalars().all()
        assert [(a.action, a.actor_id, a.allowed) for a in actions] == [
            ("prompt", "U0ALICE", False),
            ("prompt.set", "U0ADMIN", True),
            ("prompt.set", "U0ADMIN", True),
        ]
