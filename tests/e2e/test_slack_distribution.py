"""`threadwise serve` for Slack as an operator runs it, in a real subprocess: distribution through OAuth
(SLACK_CLIENT_ID/SECRET, no SLACK_BOT_TOKEN) installs a workspace and answers it with its own token; a
natively streamed answer cut by SIGKILL is stopped with the notice by the restarted process (issue 15)."""

from __future__ import annotations

import os
import signal
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp

from core.domain.errors import INTERRUPTED_MESSAGE
from tests.e2e.test_serve_durability import LONG_ANSWER, serve_env, serving
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.fakes.slack_api import (
    BOT_USER_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_TEAM,
    TEAM_ID,
    EventSender,
    FakeSlack,
)


async def test_serve_installs_a_workspace_through_oauth_and_answers_it_with_its_token(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        fake.add_user("U0ALICE", "alice")
        env = serve_env(
            tmp_path, fake, fake_openai, SLACK_CLIENT_ID=CLIENT_ID, SLACK_CLIENT_SECRET=CLIENT_SECRET
        )
        del env["SLACK_BOT_TOKEN"]
        async with serving(tmp_path, env) as serve:
            fake.oauth_redirect_url = f"{serve.base}/slack/oauth_redirect"
            async with session.get(f"{serve.base}/slack/install", allow_redirects=False) as start:
                assert start.status == 302
                assert start.headers["Location"].startswith(f"{fake.base}/oauth/v2/authorize?")
                cookie = SimpleCookie(start.headers["Set-Cookie"])
            async with session.get(start.headers["Location"], allow_redirects=False) as page:
                back = page.headers["Location"]
            state = "; ".join(f"{name}={morsel.value}" for name, morsel in cookie.items())
            async with session.get(back, headers={"Cookie": state}) as done:
                assert done.status == 200 and "Thank you" in await done.text()

            fake_openai.script(Reply(text="Welcome aboard"))
            event = fake.message_event(f"<@{fake.bot_user(OTHER_TEAM)}> hi", mention=True, team=OTHER_TEAM)
            sender = EventSender(f"{serve.base}/slack/events", session)
            assert (await sender.event(fake.envelope(event))).status == 200
            await fake.wait_for(lambda: any(m.current == "Welcome aboard" for m in fake.bot_messages()))
            [answer] = fake.bot_messages()
            [token] = [token for token, team in fake.tokens.items() if team == OTHER_TEAM]
            assert answer.token == token
            serve.process.send_signal(signal.SIGTERM)
            assert await serve.process.wait() == 0
        log = "".join(serve.log)
        assert "Traceback" not in log and CLIENT_SECRET not in log and token not in log


async def test_sigkill_mid_native_stream_then_restart_stops_the_stream_with_the_notice(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake, aiohttp.ClientSession() as session:
        fake.add_user("U0ALICE", "alice")
        fake.streaming.add(TEAM_ID)
        env = serve_env(tmp_path, fake, fake_openai)
        assert "SLACK_CLIENT_ID" not in env and os.environ.get("SLACK_CLIENT_ID") is None
        # output moderation shows a paragraph once it is complete: the first one streams, the second is slow
        answer = "Once upon a time.\n\n" + LONG_ANSWER
        fake_openai.script(Reply(text=answer, chunk_chars=6, chunk_delay=0.3))
        question = fake.message_event(f"<@{BOT_USER_ID}> tell me a long story", mention=True)
        async with serving(tmp_path, env) as first:
            sender = EventSender(f"{first.base}/slack/events", session)
            assert (await sender.event(fake.envelope(question))).status == 200
            await fake.wait_for(
                lambda: any(m.current.startswith("Once upon") for m in fake.bot_messages()), seconds=30
            )
            first.process.kill()
            await first.process.wait()
        [reply] = fake.bot_messages("C0GENERAL", thread_ts=question["ts"])
        assert reply.stream == "open"  # the killed process could not stop it

        async with serving(tmp_path, env) as second:
            await fake.wait_for(lambda: reply.stream == "stopped", seconds=60)
            assert reply.current.startswith("Once upon a time.") and reply.edits == []  # the part stays
            assert reply.current.endswith(f":warning: {INTERRUPTED_MESSAGE}")
            second.process.send_signal(signal.SIGTERM)
            assert await second.process.wait() == 0
        assert "Traceback" not in "".join(second.log)
