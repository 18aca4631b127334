"""The answer buttons as an operator runs them: a real `threadwise serve` subprocess in Slack HTTP mode,
against the Slack and OpenAI fakes. Signed clicks arrive at ``POST /slack/events``: Stop ends a streaming
answer with its note, a 👍 then shows in `threadwise admin report --by feedback`; a process SIGKILLed mid
native stream leaves, after the restart's recovery, no Stop button behind and no live buttons on the
interrupted reply; two Retry clicks at once on two `serve` replicas of one PostgreSQL answer once."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
from pathlib import Path

import aiohttp
import pytest

from core.answers.buttons import RETRYING
from tests.conftest import postgres_url, reset_postgres
from tests.e2e.conftest import Run
from tests.e2e.test_serve_durability import LONG_ANSWER, serve_env, serving
from tests.fakes.openai_api import FakeOpenAI, Reply, Stall, ToolCallSpec
from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, EventSender, FakeSlack, PostedMessage

MODEL = "gpt-4o-mini"


async def test_stop_then_thumbs_up_at_serve_and_the_vote_in_the_feedback_report(
    run_cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    fake_openai: FakeOpenAI,
) -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.add_user("U0ALICE", "alice")
        # moderation off: the stalled stream's one delta is shown at once (no later paragraph follows it)
        env = serve_env(tmp_path, fake, fake_openai, THREADWISE_MODERATION="false")
        partial = "The long story begins in 1850, when"
        fake_openai.script(Stall(text=partial))
        question = fake.message_event(f"<@{BOT_USER_ID}> tell me everything", mention=True)
        async with serving(tmp_path, env) as serve:
            sender = EventSender(f"{serve.base}/slack/events", session)
            assert (await sender.event(fake.envelope(question))).status == 200

            def stop_button() -> list[object]:
                return [
                    m
                    for m in fake.bot_messages(thread_ts=question["ts"], controls=True)
                    if "answer:stop" in m.buttons() and partial in m.current
                ]

            await fake.wait_for(lambda: bool(stop_button()), seconds=30)
            [reply] = fake.bot_messages(thread_ts=question["ts"])
            click = await sender.action(fake.action_payload(reply, "answer:stop"))
            assert click.status == 200

            await fake.wait_for(lambda: "Stopped by alice" in reply.current, seconds=30)
            assert reply.current.startswith(partial)
            await fake.wait_for(lambda: "answer:up" in reply.buttons(), seconds=10)
            assert set(reply.buttons()) == {"answer:up", "answer:down", "answer:retry"}

            vote = await sender.action(fake.action_payload(reply, "answer:up"))
            assert vote.status == 200
            await fake.wait_for(lambda: any("thumbsup" in str(r.get("text")) for r in fake.responses))

            serve.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(serve.process.wait(), 30) == 0
        assert "Traceback" not in "".join(serve.log)

    table = tmp_path / "feedback.csv"
    report: Run = await run_cli("admin", "report", "--by", "feedback", "--csv", str(table), env=env)
    assert report.code == 0, report.err
    assert report.out.splitlines()[0].startswith("Feedback by model")
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    assert [(r["model"], r["up"], r["down"]) for r in rows] == [(MODEL, "1", "0")]


async def test_sigkill_mid_native_stream_leaves_no_stop_button_after_the_restart(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.add_user("U0ALICE", "alice")
        fake.streaming.add(TEAM_ID)
        env = serve_env(tmp_path, fake, fake_openai)
        fake_openai.script(Reply(text=LONG_ANSWER, chunk_chars=6, chunk_delay=0.3))
        question = fake.message_event(f"<@{BOT_USER_ID}> tell me a long story", mention=True)
        async with serving(tmp_path, env) as first:
            sender = EventSender(f"{first.base}/slack/events", session)
            assert (await sender.event(fake.envelope(question))).status == 200
            await fake.wait_for(
                lambda: any(m.current.startswith("word0") for m in fake.bot_messages()), seconds=30
            )
            first.process.kill()
            assert await first.process.wait() == -signal.SIGKILL
        [stop] = [m for m in fake.bot_messages(thread_ts=question["ts"], controls=True) if m.is_control]
        assert "answer:stop" in stop.buttons()  # left behind by the killed process
        [reply] = fake.bot_messages("C0GENERAL", thread_ts=question["ts"])
        # (reply.stream is usually still "open" here; on a loaded machine it was seen "stopped" already, cause
        # not found: what follows holds either way)

        async with serving(tmp_path, env) as second:
            await fake.wait_for(lambda: "interrupted" in reply.current, seconds=60)
            await fake.wait_for(lambda: stop.deleted, seconds=10)
            second.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.process.wait(), 30) == 0
        assert reply.stream == "stopped" and reply.current.startswith("word0")
        assert reply.buttons() == {}  # an interrupted reply has no live buttons
        shown = fake.bot_messages(thread_ts=question["ts"], controls=True)
        assert [m.ts for m in shown] == [reply.ts]
        assert "Traceback" not in "".join(second.log)


async def test_sigkill_while_waiting_for_an_approval_then_a_late_approve_decides_nothing(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """A replica killed while its turn waits for Approve / Deny: after the restart's recovery the reply says
    it was interrupted, and a click on the prompt's Approve left behind is told the request is closed (it
    does not show "Approved" for a tool that nothing will run)."""
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.add_user("U0ALICE", "alice")
        env = serve_env(tmp_path, fake, fake_openai, THREADWISE_APPROVAL_TOOLS="calculator")
        fake_openai.script(
            Reply(tool_calls=[ToolCallSpec("calculator", json.dumps({"expression": "6 * 7"}))])
        )
        question = fake.message_event(f"<@{BOT_USER_ID}> what is six times seven?", mention=True)

        def prompt() -> list[PostedMessage]:
            return [m for m in fake.bot_messages(thread_ts=question["ts"]) if "tw:approve" in m.buttons()]

        async with serving(tmp_path, env) as first:
            sender = EventSender(f"{first.base}/slack/events", session)
            assert (await sender.event(fake.envelope(question))).status == 200
            await fake.wait_for(lambda: bool(prompt()), seconds=30)
            first.process.kill()
            assert await first.process.wait() == -signal.SIGKILL
        [asking] = prompt()

        async with serving(tmp_path, env) as second:
            await fake.wait_for(
                lambda: any("interrupted" in m.current for m in fake.bot_messages(thread_ts=question["ts"])),
                seconds=60,
            )
            sender = EventSender(f"{second.base}/slack/events", session)
            assert (await sender.action(fake.action_payload(asking, "tw:approve"))).status == 200
            await fake.wait_for(lambda: bool(fake.ephemeral), seconds=10)
            assert "already closed" in fake.ephemeral[-1]["text"]
            assert "Approved" not in asking.current
            second.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.process.wait(), 30) == 0
        assert len(fake_openai.chat_requests()) == 1  # the model was not asked again: nothing ran
        assert "Traceback" not in "".join(second.log)


async def test_two_retry_clicks_at_once_on_two_serve_replicas_answer_once(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    """Two `threadwise serve` processes on one PostgreSQL (Slack HTTP mode behind a load balancer): the
    asker and an admin click Retry on the same answer at the same moment, one click reaching each. The
    question is answered again once; the other clicker is told privately it is already being retried."""
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    await reset_postgres(url)
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.add_user("U0ALICE", "alice")
        fake.add_user("U0ADMIN", "ada", admin=True)
        env = serve_env(tmp_path, fake, fake_openai, DATABASE_URL=url, THREADWISE_MODERATION="false")
        fake_openai.script(Reply(text="Lyon."), Reply(text="Paris."), Reply(text="Marseille."))
        question = fake.message_event(f"<@{BOT_USER_ID}> capital of France?", mention=True)
        for replica in ("a", "b"):
            (tmp_path / replica).mkdir()
        async with serving(tmp_path / "a", env) as one, serving(tmp_path / "b", env) as other:
            senders = [EventSender(f"{serve.base}/slack/events", session) for serve in (one, other)]
            assert (await senders[0].event(fake.envelope(question))).status == 200

            def answers() -> list[PostedMessage]:
                return [
                    m for m in fake.bot_messages(thread_ts=question["ts"]) if "answer:retry" in m.buttons()
                ]

            await fake.wait_for(lambda: bool(answers()), seconds=30)
            [first] = answers()
            clicks = [
                fake.action_payload(first, "answer:retry", user=user) for user in ("U0ALICE", "U0ADMIN")
            ]
            for n, click in enumerate(clicks):  # two distinct actions
                click["actions"][0]["action_ts"] = f"{1_700_000_000 + n}.000{n}00"
            delivered = await asyncio.gather(*(s.action(c) for s, c in zip(senders, clicks, strict=True)))
            assert [d.status for d in delivered] == [200, 200]

            await fake.wait_for(
                lambda: any(m.current == "Paris." for m in fake.bot_messages(thread_ts=question["ts"])),
                seconds=30,
            )
            await fake.wait_for(lambda: bool(fake.responses), seconds=10)
            assert [r.get("text") for r in fake.responses] == [f":warning: {RETRYING}"]
            assert len(fake_openai.chat_requests()) == 2  # the question, and one retry
            replies = [m.current for m in fake.bot_messages(thread_ts=question["ts"])]
            assert replies == ["Lyon.", "Paris."]
            for serve in (one, other):
                serve.process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(serve.process.wait(), 30) == 0
        assert "Traceback" not in "".join(one.log + other.log)
