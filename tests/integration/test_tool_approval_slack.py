"""Tool approval on Slack (issue 15, part 4), composed as `threadwise serve` composes it: the real bolt app
and slack_sdk against the Slack fake, the real openai SDK against the OpenAI fake scripting a tool call, and
Approve / Deny clicks sent as signed ``block_actions`` interactivity payloads to ``POST /slack/events``.
The last test runs two services on one database (SQLite file, or the PostgreSQL of TEST_DATABASE_URL): the
turn waits on one replica while the click reaches the other."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from pydantic import BaseModel
from sqlalchemy import select

from bots.bootstrap import Core, open_core
from bots.http import HttpServer
from bots.inflight import InFlight
from bots.slack.app import open_slack
from bots.slack.config import SlackOptions
from core.db.models import AdminAction, Reservation, ToolApproval, ToolCallRecord, UsageRecord
from core.settings import Settings, load_settings
from core.tools.registry import Tool, ToolContext
from tests.fakes.openai_api import FakeOpenAI, Reply, ToolCallSpec
from tests.fakes.slack_api import (
    APP_ID,
    APP_TOKEN,
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    TEAM_ID,
    EventSender,
    FakeSlack,
    PostedMessage,
)

CHANNEL = "C0GENERAL"


class Lookup(BaseModel):
    query: str


@dataclass
class SideEffects:
    """What the gated tool did: one entry per run (the test's stand-in for a page fetched, an issue filed)."""

    runs: list[str] = field(default_factory=list)

    def tool(self) -> Tool:
        async def lookup(args: Lookup, context: ToolContext) -> str:
            self.runs.append(args.query)
            return f"found: {args.query}"

        return Tool("crm__lookup", "Look a customer up in the CRM.", Lookup, lookup)


@dataclass
class Replica:
    core: Core
    background: InFlight
    sender: EventSender


def settings_of(
    database_url: str, openai: FakeOpenAI, fake: FakeSlack, *, socket: bool = False, **threadwise: str
) -> Settings:
    return load_settings(
        None,
        openai={"api_key": "test-key", "base_url": openai.base_url},
        slack={
            "bot_token": BOT_TOKEN,
            "app_token": APP_TOKEN if socket else "",
            "signing_secret": SIGNING_SECRET,
            "api_url": fake.api_url,
        },
        service={"database_url": database_url, "port": "0"},
        threadwise={"openai_max_retries": "0", "approval_tools": "crm__*", **threadwise},
        limits={"user_daily_budget_usd": "5"},
    )


@contextlib.asynccontextmanager
async def replica(settings: Settings, effects: SideEffects) -> AsyncIterator[Replica]:
    async with open_core(settings) as core, contextlib.AsyncExitStack() as stack:
        core.tools.add(effects.tool())
        http = HttpServer(host="127.0.0.1", port=0, registry=core.metrics.registry)
        background = InFlight("Slack")
        await stack.enter_async_context(
            open_slack(core.chat, SlackOptions.from_settings(settings), http, background=background)
        )
        await stack.enter_async_context(http)
        http.ready = True
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield Replica(core, background, EventSender(f"http://127.0.0.1:{http.port}/slack/events", session))


@contextlib.asynccontextmanager
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.add_user("U0ALICE", "alice")
        fake.add_user("U0BOB", "bob")
        fake.add_user("U0ADMIN", "ada", admin=True)
        yield fake


def script_lookup(openai: FakeOpenAI, query: str = "ada@example.com") -> None:
    openai.script(
        Reply(tool_calls=[ToolCallSpec("crm__lookup", json.dumps({"query": query}), id="call-1")]),
        Reply(text="Here is what I know."),
    )


async def ask(fake: FakeSlack, node: Replica, text: str = "who is ada?") -> dict[str, Any]:
    event = fake.message_event(f"<@{BOT_USER_ID}> {text}", mention=True)
    delivery = await node.sender.event(fake.envelope(event))
    assert delivery.status == 200
    return event


def blocks_of(args: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = args.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


async def approval_prompt(fake: FakeSlack) -> tuple[PostedMessage, list[dict[str, Any]]]:
    """The approval message once posted, and the blocks it was posted with."""

    def asks(call: Any) -> bool:  # the answer's placeholder has blocks too (its Stop button)
        return "tw:approve" in json.dumps(blocks_of(call.args))

    await fake.wait_for(lambda: any(asks(call) for call in fake.calls_of("chat.postMessage")))
    call = next(call for call in fake.calls_of("chat.postMessage") if asks(call))
    message = next(m for m in fake.messages if m.ts == call.args.get("ts") or m.text == call.args["text"])
    return message, blocks_of(call.args)


def click_payload(
    message: PostedMessage, action_id: str, value: str, *, user: str, base: str
) -> dict[str, Any]:
    """A ``block_actions`` payload as Slack documents it, for a click on a button of ``message``."""
    return {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "9s8d9as89d8as9d8as989",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
            "thread_ts": message.thread_ts,
        },
        "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        "channel": {"id": message.channel, "name": "general"},
        "message": {
            "type": "message",
            "user": BOT_USER_ID,
            "ts": message.ts,
            "thread_ts": message.thread_ts,
            "text": message.text,
        },
        "response_url": f"{base}/respond/{uuid.uuid4().hex}",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "tw_approval",
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": "1548426417.840180",
            }
        ],
    }


async def click(
    fake: FakeSlack, node: Replica, message: PostedMessage, action_id: str, value: str, *, user: str
) -> int:
    body = urlencode(
        {"payload": json.dumps(click_payload(message, action_id, value, user=user, base=fake.base))}
    )
    delivery = await node.sender.send(body, "application/x-www-form-urlencoded")
    return delivery.status


def approval_value(blocks: list[dict[str, Any]], action_id: str) -> str:
    actions = next(block for block in blocks if block["type"] == "actions")
    return str(next(e["value"] for e in actions["elements"] if e["action_id"] == action_id))


async def approval_rows(core: Core) -> list[ToolApproval]:
    async with core.database.reader() as session:
        return list((await session.execute(select(ToolApproval).order_by(ToolApproval.id))).scalars())


def tool_results(openai: FakeOpenAI, request: int) -> dict[str, str]:
    messages = openai.chat_requests()[request]["messages"]
    return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}


def answered(fake: FakeSlack, thread_ts: str) -> bool:
    return any(m.current.startswith("Here is what I know.") for m in fake.bot_messages(CHANNEL, thread_ts))


async def still_waiting(node: Replica) -> None:
    """Give a waiting turn time to (wrongly) go on: several polls of its approval row."""
    await asyncio.sleep(1.2)
    assert len(node.background) >= 1  # the turn is still running


# ------------------------------------------------------------------------------------------------- tests


async def test_the_gated_tool_runs_only_once_the_asker_approves(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", fake_openai, fake)
        async with replica(settings, effects) as node:
            script_lookup(fake_openai)
            event = await ask(fake, node)
            message, blocks = await approval_prompt(fake)
            # In the asker's thread: the tool and its redacted arguments, with Approve / Deny.
            assert message.thread_ts == event["ts"]
            section = blocks[0]["text"]["text"]
            assert "crm__lookup" in section and "<@U0ALICE>" in section
            assert "[REDACTED:email]" in section and "ada@example.com" not in json.dumps(blocks)
            actions = next(block for block in blocks if block["type"] == "actions")
            assert [e["action_id"] for e in actions["elements"]] == ["tw:approve", "tw:deny"]
            value = approval_value(blocks, "tw:approve")

            await still_waiting(node)
            assert effects.runs == []  # nothing ran before the approval
            assert len(fake_openai.chat_requests()) == 1

            # Someone else's click is refused politely, privately, and changes nothing.
            assert await click(fake, node, message, "tw:approve", value, user="U0BOB") == 200
            await fake.wait_for(lambda: fake.ephemeral)
            assert fake.ephemeral[-1]["user"] == "U0BOB"
            assert "only <@U0ALICE>" in fake.ephemeral[-1]["text"]
            await still_waiting(node)
            assert effects.runs == []
            assert [row.status for row in await approval_rows(node.core)] == ["pending"]

            assert await click(fake, node, message, "tw:approve", value, user="U0ALICE") == 200
            await node.background.idle()

            assert effects.runs == ["ada@example.com"]
            assert tool_results(fake_openai, 1) == {"call-1": "found: [REDACTED:email]"}
            assert answered(fake, event["ts"])
            assert "Approved by <@U0ALICE>" in message.current
            [row] = await approval_rows(node.core)
            assert (row.status, row.decided_by, row.tool) == ("approved", "U0ALICE", "crm__lookup")
            assert row.decided_at is not None and "[REDACTED:email]" in row.arguments
            async with node.core.database.reader() as session:
                record = await session.get(ToolCallRecord, row.tool_call_id)
            assert record is not None and (record.tool, record.outcome) == ("crm__lookup", "ok")
            # A late click on the closed request is told so and changes nothing.
            assert await click(fake, node, message, "tw:deny", value, user="U0ALICE") == 200
            await node.background.idle()
            assert "already closed" in fake.ephemeral[-1]["text"]
            assert [row.status for row in await approval_rows(node.core)] == ["approved"]


async def test_a_denied_call_does_not_run_and_the_model_answers_without_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", fake_openai, fake)
        async with replica(settings, effects) as node:
            script_lookup(fake_openai)
            await ask(fake, node)
            message, blocks = await approval_prompt(fake)
            # an admin of the workspace may decide for the asker
            value = approval_value(blocks, "tw:deny")
            assert await click(fake, node, message, "tw:deny", value, user="U0ADMIN") == 200
            await fake.wait_for(lambda: len(fake_openai.chat_requests()) == 2)
            await node.background.idle()

            assert effects.runs == []
            result = json.loads(tool_results(fake_openai, 1)["call-1"])
            assert result["kind"] == "denied" and "denied" in result["error"]
            assert "Denied by <@U0ADMIN>" in message.current
            [row] = await approval_rows(node.core)
            assert (row.status, row.decided_by) == ("denied", "U0ADMIN")
            async with node.core.database.reader() as session:
                record = await session.get(ToolCallRecord, row.tool_call_id)
            assert record is not None and record.outcome == "denied"


async def test_unanswered_within_the_timeout_the_turn_goes_on_without_the_tool(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """The wait outlasts THREADWISE_TURN_TIMEOUT, which does not end a turn waiting for a person; then the
    model hears the call was not approved, answers, and the hold is settled."""
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(
            f"sqlite+aiosqlite:///{tmp_path / 't.db'}",
            fake_openai,
            fake,
            approval_timeout="3",
            turn_timeout="2",
        )
        async with replica(settings, effects) as node:
            script_lookup(fake_openai)
            event = await ask(fake, node)
            message, _ = await approval_prompt(fake)
            async with node.core.database.reader() as session:
                held = list((await session.execute(select(Reservation))).scalars())
            assert len(held) == 1  # the waiting turn holds its budget, not swept as abandoned while it waits
            assert held[0].expires_at - held[0].created_at > timedelta(seconds=900 + 3)
            await node.background.idle()

            assert effects.runs == []
            result = json.loads(tool_results(fake_openai, 1)["call-1"])
            assert result["kind"] == "unapproved" and "not approved within 3 seconds" in result["error"]
            assert answered(fake, event["ts"])
            assert "Not approved within 3 s" in message.current
            [row] = await approval_rows(node.core)
            assert row.status == "timed_out" and row.decided_by is None
            async with node.core.database.reader() as session:
                assert list((await session.execute(select(Reservation))).scalars()) == []  # settled
                kinds = list((await session.execute(select(UsageRecord.kind))).scalars())
            assert kinds == ["chat", "chat"]


async def test_admins_gate_tools_per_channel_and_the_change_is_audited(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(
            f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", fake_openai, fake, approval_tools="none"
        )
        async with replica(settings, effects) as node:
            # not gated anywhere by default: the call runs at once
            script_lookup(fake_openai)
            await ask(fake, node)
            await node.background.idle()
            assert effects.runs == ["ada@example.com"]

            refused = fake.command_payload("/ai-admin", "tools approval here crm__*", user="U0BOB")
            assert (await node.sender.command(refused)).status == 200
            await node.background.idle()
            gate = fake.command_payload("/ai-admin", "tools approval here crm__*", user="U0ADMIN")
            delivery = await node.sender.command(gate)
            assert delivery.status == 200
            await node.background.idle()
            shown = json.dumps([delivery.body, fake.responses, fake.ephemeral])
            assert "only once the asker approves: crm__*" in shown

            script_lookup(fake_openai, "bob@example.com")
            await ask(fake, node, "and bob?")
            await approval_prompt(fake)
            await still_waiting(node)
            assert effects.runs == ["ada@example.com"]  # this time it waits for the asker
            async with node.core.database.reader() as session:
                actions = (await session.execute(select(AdminAction))).scalars().all()
            audited = [(a.action, a.actor_id, a.allowed) for a in actions]
            assert ("tools.approval", "U0ADMIN", True) in audited
            assert any(actor == "U0BOB" and not allowed for _, actor, allowed in audited)  # refused, logged


async def test_clicks_arrive_over_socket_mode_too(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", fake_openai, fake, socket=True)
        async with replica(settings, effects) as node:
            script_lookup(fake_openai)
            event = fake.message_event(f"<@{BOT_USER_ID}> who is ada?", mention=True)
            await fake.socket_send("events_api", fake.envelope(event))
            message, blocks = await approval_prompt(fake)
            value = approval_value(blocks, "tw:approve")
            payload = click_payload(message, "tw:approve", value, user="U0ALICE", base=fake.base)
            await fake.socket_send("interactive", payload)  # acknowledged at once
            await fake.wait_for(lambda: answered(fake, event["ts"]))
            await node.background.idle()
            assert effects.runs == ["ada@example.com"]
            assert "Approved by <@U0ALICE>" in message.current


async def test_a_forged_click_is_refused_before_it_is_read(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", fake_openai, fake)
        async with replica(settings, effects) as node:
            script_lookup(fake_openai)
            await ask(fake, node)
            message, blocks = await approval_prompt(fake)
            value = approval_value(blocks, "tw:approve")
            payload = click_payload(message, "tw:approve", value, user="U0ALICE", base=fake.base)
            body = urlencode({"payload": json.dumps(payload)})
            forged = await node.sender.send(
                body, "application/x-www-form-urlencoded", secret="not-the-secret"
            )
            assert forged.status == 401
            await still_waiting(node)
            assert effects.runs == []
            assert [row.status for row in await approval_rows(node.core)] == ["pending"]
            assert await click(fake, node, message, "tw:approve", value, user="U0ALICE") == 200
            await node.background.idle()
            assert effects.runs == ["ada@example.com"]


async def test_a_click_on_another_replica_releases_the_waiting_turn(
    database_url: str, fake_openai: FakeOpenAI
) -> None:
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(database_url, fake_openai, fake)
        async with replica(settings, effects) as first, replica(settings, effects) as second:
            script_lookup(fake_openai)
            event = await ask(fake, first)  # the turn runs on the first replica
            message, blocks = await approval_prompt(fake)
            await still_waiting(first)
            assert effects.runs == []
            value = approval_value(blocks, "tw:approve")
            assert await click(fake, second, message, "tw:approve", value, user="U0ALICE") == 200
            await second.background.idle()
            await first.background.idle()

            assert effects.runs == ["ada@example.com"]
            assert answered(fake, event["ts"])
            assert "Approved by <@U0ALICE>" in message.current
            [row] = await approval_rows(second.core)
            assert (row.status, row.decided_by) == ("approved", "U0ALICE")


async def test_stop_while_the_turn_waits_for_an_approval_stops_it_at_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """The asker clicks Stop on the answer while it waits for Approve / Deny: the turn ends then (not when
    the approval times out), the tool never runs, no further model call is made, the prompt says it was
    cancelled, and a late Approve runs nothing."""
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(
            f"sqlite+aiosqlite:///{tmp_path / 's.db'}", fake_openai, fake, approval_timeout="600"
        )
        async with replica(settings, effects) as node:
            script_lookup(fake_openai)
            event = await ask(fake, node)
            message, blocks = await approval_prompt(fake)
            value = approval_value(blocks, "tw:approve")
            [answer] = [
                m
                for m in fake.bot_messages(CHANNEL, event["ts"], controls=True)
                if "answer:stop" in m.buttons()
            ]
            stop = fake.action_payload(answer, "answer:stop", user="U0ALICE")
            body = urlencode({"payload": json.dumps(stop)})
            assert (await node.sender.send(body, "application/x-www-form-urlencoded")).status == 200
            async with asyncio.timeout(60):  # a guard against hanging for the 600 s approval wait
                await node.background.idle()

            assert effects.runs == []
            assert len(fake_openai.chat_requests()) == 1  # the model was not asked again
            assert "Stopped by alice" in answer.current
            assert "answer:stop" not in answer.buttons()
            [row] = await approval_rows(node.core)
            assert row.status == "stopped"
            assert "the answer was stopped" in message.current
            assert "tw:approve" not in json.dumps(message.blocks)  # the prompt is closed, its buttons gone
            async with node.core.database.reader() as session:
                assert list((await session.execute(select(Reservation))).scalars()) == []  # settled

            assert await click(fake, node, message, "tw:approve", value, user="U0ALICE") == 200
            await node.background.idle()
            assert effects.runs == []


async def test_retry_of_an_answer_that_used_a_gated_tool_asks_again_before_running_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Retry re-asks the question; the model calls the gated tool again, which waits for a new approval (the
    first one does not carry over), runs once approved, and the new answer replaces the old in history."""
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", fake_openai, fake)
        async with replica(settings, effects) as node:
            script_lookup(fake_openai)
            event = await ask(fake, node)
            first_prompt, blocks = await approval_prompt(fake)
            assert (
                await click(
                    fake,
                    node,
                    first_prompt,
                    "tw:approve",
                    approval_value(blocks, "tw:approve"),
                    user="U0ALICE",
                )
                == 200
            )
            await node.background.idle()
            assert effects.runs == ["ada@example.com"] and answered(fake, event["ts"])
            [old] = [m for m in fake.bot_messages(CHANNEL, event["ts"]) if "answer:retry" in m.buttons()]

            fake_openai.script(
                Reply(tool_calls=[ToolCallSpec("crm__lookup", json.dumps({"query": "ada"}), id="call-2")]),
                Reply(text="Ada is a customer."),
            )
            retry = urlencode({"payload": json.dumps(fake.action_payload(old, "answer:retry"))})
            assert (await node.sender.send(retry, "application/x-www-form-urlencoded")).status == 200
            await fake.wait_for(
                lambda: (
                    sum(
                        "tw:approve" in json.dumps(blocks_of(c.args))
                        for c in fake.calls_of("chat.postMessage")
                    )
                    == 2
                )
            )
            await still_waiting(node)
            assert effects.runs == ["ada@example.com"]  # not run again before the new approval
            rows = await approval_rows(node.core)
            assert [row.status for row in rows] == ["approved", "pending"]
            [second_prompt] = [
                m
                for m in fake.bot_messages(CHANNEL, event["ts"], controls=True)
                if "tw:approve" in m.buttons()
            ]
            value = str(rows[1].id)
            assert await click(fake, node, second_prompt, "tw:approve", value, user="U0ALICE") == 200
            await node.background.idle()

            assert effects.runs == ["ada@example.com", "ada"]
            assert any(
                m.current.startswith("Ada is a customer.") for m in fake.bot_messages(CHANNEL, event["ts"])
            )
            assert "Retried by" in str(old.blocks)
            # the retried turn's history holds the question once, and not the replaced tool round
            history = fake_openai.chat_requests()[-1]["messages"]
            assert [m["content"] for m in history if m["role"] == "user"] == ["who is ada?"]
            assert tool_results(fake_openai, len(fake_openai.chat_requests()) - 1) == {"call-2": "found: ada"}


async def test_shutdown_while_a_turn_waits_for_an_approval_closes_the_prompt(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """SIGTERM's drain (THREADWISE_DRAIN_SECONDS) ends before the approval is given: the turn is interrupted,
    its approval is cancelled, and the prompt shows so instead of Approve / Deny that nothing waits for."""
    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(
            f"sqlite+aiosqlite:///{tmp_path / 'd.db'}", fake_openai, fake, drain_seconds="0.5"
        )
        async with replica(settings, effects) as node:
            script_lookup(fake_openai)
            event = await ask(fake, node)
            message, blocks = await approval_prompt(fake)
            value = approval_value(blocks, "tw:approve")
        # the service has stopped (its turns drained, then cancelled)
        assert effects.runs == []
        assert message.buttons() == {}
        assert "no longer waited for" in message.current
        [reply] = [m for m in fake.bot_messages(CHANNEL, event["ts"]) if m.ts != message.ts]
        assert "interrupted" in reply.current and reply.buttons() == {}

        async with replica(settings, effects) as node:  # the next start: a late (forged back) click
            assert await click(fake, node, message, "tw:approve", value, user="U0ALICE") == 200
            await node.background.idle()
            assert "already closed" in fake.ephemeral[-1]["text"]
            assert [row.status for row in await approval_rows(node.core)] == ["cancelled"]
        assert effects.runs == []


async def test_stop_while_a_slow_tool_runs_cuts_the_tool_off(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    """Stop clicked while a tool (no approval needed) runs, e.g. a slow lookup or an image being generated:
    the tool is cancelled then, not when it would finish, the model is not asked again, the call is recorded
    as stopped, and the next turn's history is valid (the call has its result)."""
    started: list[str] = []
    finished: list[str] = []

    async def slow(args: Lookup, context: ToolContext) -> str:
        started.append(args.query)
        await asyncio.sleep(600)
        finished.append(args.query)
        return "never"

    effects = SideEffects()
    async with fake_slack() as fake:
        settings = settings_of(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", fake_openai, fake)
        async with replica(settings, effects) as node:
            node.core.tools.add(Tool("slow_lookup", "Look it up slowly.", Lookup, slow, timeout=900.0))
            fake_openai.script(
                Reply(tool_calls=[ToolCallSpec("slow_lookup", json.dumps({"query": "x"}), id="call-9")])
            )
            event = await ask(fake, node)
            await fake.wait_for(lambda: started == ["x"])
            [answer] = [
                m
                for m in fake.bot_messages(CHANNEL, event["ts"], controls=True)
                if "answer:stop" in m.buttons()
            ]
            stop = urlencode({"payload": json.dumps(fake.action_payload(answer, "answer:stop"))})
            assert (await node.sender.send(stop, "application/x-www-form-urlencoded")).status == 200
            async with asyncio.timeout(60):  # a guard against hanging for the tool's 600 s
                await node.background.idle()

            assert finished == []
            assert len(fake_openai.chat_requests()) == 1
            assert "Stopped by alice" in answer.current
            async with node.core.database.reader() as session:
                [record] = (await session.execute(select(ToolCallRecord))).scalars().all()
                assert list((await session.execute(select(Reservation))).scalars()) == []
            assert (record.tool, record.outcome) == ("slow_lookup", "stopped")

            fake_openai.script(Reply(text="Fine."))
            follow = fake.message_event("never mind", thread_ts=event["ts"])
            assert (await node.sender.event(fake.envelope(follow))).status == 200
            await node.background.idle()
            messages = fake_openai.chat_requests()[-1]["messages"]
            assert [m["role"] for m in messages if m["role"] != "system"] == [
                "user",
                "assistant",
                "tool",
                "assistant",
                "user",
            ]
            assert "stopped" in tool_results(fake_openai, 1)["call-9"]
