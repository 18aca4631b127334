"""Slack distribution (OAuth v2), composed as `threadwise serve` composes it with SLACK_CLIENT_ID,
SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET and no SLACK_BOT_TOKEN: workspaces install the app through
GET /slack/install and Slack's authorize page (the fake's), each is answered with its own bot token, a
rotated token is refreshed, an uninstalled or revoked workspace and an unknown one are refused."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bots.bootstrap import Core, configured_platforms, open_core
from bots.http import HttpServer
from bots.inflight import InFlight
from bots.slack.app import open_slack
from bots.slack.config import SlackOptions
from bots.slack.scopes import BOT_SCOPES
from core.settings import SettingsError, load_settings
from tests.fakes.openai_api import FakeOpenAI, Reply
from tests.fakes.slack_api import (
    BOT_TOKEN,
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_TEAM,
    SIGNING_SECRET,
    TEAM_ID,
    EventSender,
    FakeSlack,
)


@dataclass
class Distributed:
    fake: FakeSlack
    openai: FakeOpenAI
    core: Core
    background: InFlight
    sender: EventSender
    session: aiohttp.ClientSession
    base: str

    async def install(self, team: str) -> aiohttp.ClientResponse:
        """An admin of ``team`` installs the app: /slack/install, Slack's authorize page, the redirect back
        (with the state cookie /slack/install set, as the browser sends it); returns the last answer."""
        self.fake.install_into = team
        async with self.session.get(f"{self.base}/slack/install", allow_redirects=False) as start:
            assert start.status == 302, await start.text()
            authorize = start.headers["Location"]
            cookie = SimpleCookie(start.headers["Set-Cookie"])
        async with self.session.get(authorize, allow_redirects=False) as slack_page:
            assert slack_page.status == 302, await slack_page.text()
            back = slack_page.headers["Location"]
        state = "; ".join(f"{name}={morsel.value}" for name, morsel in cookie.items())
        async with self.session.get(back, headers={"Cookie": state}, allow_redirects=False) as done:
            await done.read()
            return done

    async def mention(self, text: str, team: str, **options: Any) -> dict[str, Any]:
        bot = self.fake.teams[team].bot_user_id if team in self.fake.teams else "U0NOBOT"
        event = self.fake.message_event(f"<@{bot}> {text}", mention=True, team=team, **options)
        delivery = await self.sender.event(self.fake.envelope(event))
        assert delivery.status == 200, delivery.body
        await self.background.idle()
        return event

    def token_of(self, team: str) -> str:
        """The newest bot token the fake issued for ``team``."""
        tokens = [token for token, owner in self.fake.tokens.items() if owner == team]
        assert tokens, f"no token for {team}"
        return tokens[-1]


def oauth_settings(tmp_path: Path, openai: FakeOpenAI, fake: FakeSlack, **threadwise: str) -> Any:
    return load_settings(
        None,
        openai={"api_key": "test-key", "base_url": openai.base_url},
        slack={
            "bot_token": "",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "signing_secret": SIGNING_SECRET,
            "api_url": fake.api_url,
        },
        service={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'oauth.db'}", "port": "0"},
        threadwise={"openai_max_retries": "0", **threadwise},
    )


@contextlib.asynccontextmanager
async def distributed(
    tmp_path: Path, openai: FakeOpenAI, fake: FakeSlack, **threadwise: str
) -> AsyncIterator[Distributed]:
    fake.add_user("U0ALICE", "alice")
    settings = oauth_settings(tmp_path, openai, fake, **threadwise)
    assert configured_platforms(settings) == ["slack"]
    async with open_core(settings) as core, contextlib.AsyncExitStack() as stack:
        http = HttpServer(host="127.0.0.1", port=0, registry=core.metrics.registry)
        background = InFlight("Slack")
        await stack.enter_async_context(
            open_slack(core.chat, SlackOptions.from_settings(settings), http, background=background)
        )
        await stack.enter_async_context(http)
        http.ready = True
        base = f"http://127.0.0.1:{http.port}"
        fake.oauth_redirect_url = f"{base}/slack/oauth_redirect"  # the app's redirect URL at Slack
        session = await stack.enter_async_context(aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()))
        sender = EventSender(f"{base}/slack/events", session)
        yield Distributed(fake, openai, core, background, sender, session, base)


@pytest.fixture
async def slack(tmp_path: Path, fake_openai: FakeOpenAI) -> AsyncIterator[Distributed]:
    async with FakeSlack() as fake, distributed(tmp_path, fake_openai, fake) as running:
        yield running


def reply_calls(fake: FakeSlack, channel: str, start: int = 0) -> list[Any]:
    return [
        call
        for call in fake.calls[start:]
        if call.method.startswith("chat.") and call.args.get("channel") == channel
    ]


async def test_two_workspaces_install_through_oauth_and_each_is_answered_with_its_own_token(
    slack: Distributed,
) -> None:
    fake = slack.fake
    assert fake.calls == []  # no token to check at start-up
    for team in (TEAM_ID, OTHER_TEAM):
        done = await slack.install(team)
        assert done.status == 200  # bolt's "Thank you!" page, which opens Slack

    # The authorize page was asked for the manifest's scopes, by this app, from SLACK_API_URL's host; the
    # code went back to Slack through oauth.v2.access on SLACK_API_URL (HTTP Basic, client id and secret).
    asked = fake.authorize_requests[0]
    assert asked["client_id"] == CLIENT_ID and asked["scope"].split(",") == list(BOT_SCOPES)
    exchanges = fake.calls_of("oauth.v2.access")
    assert len(exchanges) == 2 and all("code" in call.args for call in exchanges)
    first, second = slack.token_of(TEAM_ID), slack.token_of(OTHER_TEAM)
    assert first != second and BOT_TOKEN not in (first, second)

    slack.openai.script(Reply(text="Hello from the first"), Reply(text="Hello from the second"))
    before = len(fake.calls)
    await slack.mention("hi", TEAM_ID, channel="C0FIRST")
    await slack.mention("hi", OTHER_TEAM, channel="C0SECOND")

    [answer_one] = fake.bot_messages("C0FIRST")
    [answer_two] = fake.bot_messages("C0SECOND")
    assert answer_one.current == "Hello from the first" and answer_one.user == fake.bot_user(TEAM_ID)
    assert answer_two.current == "Hello from the second" and answer_two.user == fake.bot_user(OTHER_TEAM)
    # Every call of each reply carried its own workspace's token in the Authorization header.
    assert {call.token for call in reply_calls(fake, "C0FIRST", before)} == {first}
    assert {call.token for call in reply_calls(fake, "C0SECOND", before)} == {second}
    users = [call for call in fake.calls[before:] if call.method == "users.info"]
    assert {call.token for call in users} == {first, second}


async def test_an_uninstalled_or_revoked_workspace_is_no_longer_answered(slack: Distributed) -> None:
    fake, core = slack.fake, slack.core
    await slack.install(TEAM_ID)
    await slack.install(OTHER_TEAM)
    installations = core.installations

    # app_uninstalled from the first workspace, tokens_revoked (its bot token) from the second
    fake.uninstall(TEAM_ID)
    uninstalled = fake.envelope({"type": "app_uninstalled", "event_ts": fake.next_ts()}, team=TEAM_ID)
    assert (await slack.sender.event(uninstalled)).status == 200
    revoked = {
        "type": "tokens_revoked",
        "tokens": {"oauth": [], "bot": [fake.bot_user(OTHER_TEAM)]},
        "event_ts": fake.next_ts(),
    }
    fake.uninstall(OTHER_TEAM)
    assert (await slack.sender.event(fake.envelope(revoked, team=OTHER_TEAM))).status == 200
    await slack.background.idle()
    assert await installations.find("slack", CLIENT_ID, "", TEAM_ID) is None
    assert await installations.find("slack", CLIENT_ID, "", OTHER_TEAM) is None

    before = len(fake.calls)
    for team in (TEAM_ID, OTHER_TEAM):
        event = fake.message_event(f"<@{fake.bot_user(team)}> still there?", mention=True, team=team)
        delivery = await slack.sender.event(fake.envelope(event))
        assert delivery.status == 200  # refused by bolt's authorize, acknowledged so Slack does not retry
    await slack.background.idle()
    assert fake.calls[before:] == [] and fake.bot_messages() == []
    assert slack.openai.chat_requests() == []

    # Installing again works as the first time.
    assert (await slack.install(OTHER_TEAM)).status == 200
    slack.openai.script(Reply(text="Back again"))
    await slack.mention("hello", OTHER_TEAM, channel="C0BACK")
    [answer] = fake.bot_messages("C0BACK")
    assert answer.current == "Back again" and answer.token == slack.token_of(OTHER_TEAM)


async def test_a_workspace_without_an_installation_is_refused_cleanly(
    slack: Distributed, caplog: pytest.LogCaptureFixture
) -> None:
    fake = slack.fake
    await slack.install(OTHER_TEAM)
    caplog.set_level(logging.DEBUG)
    event = fake.message_event("<@U0NOBOT> hello?", mention=True, team="T0NOBODY")
    delivery = await slack.sender.event(fake.envelope(event))
    command = await slack.sender.command(fake.command_payload("/ai", "ask hi", team="T0NOBODY"))
    await slack.background.idle()

    assert delivery.status == 200 and command.status == 200
    assert [call.method for call in fake.calls if call.method.startswith(("chat.", "users."))] == []
    assert slack.openai.chat_requests() == []
    [told] = fake.responses  # the slash command's caller is told to reinstall, through its response_url
    assert "reinstall" in told["text"].lower()
    assert not [record for record in caplog.records if record.exc_info]  # no traceback anywhere


async def test_a_rotating_token_is_refreshed_before_it_expires_and_the_new_one_answers(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake:
        fake.token_rotation = True
        fake.token_expires_in = 600  # within bolt's 120 minutes: refreshed at the next request
        async with distributed(tmp_path, fake_openai, fake) as slack:
            await slack.install(OTHER_TEAM)
            installed = slack.token_of(OTHER_TEAM)
            assert installed.startswith("xoxe.xoxb-")
            fake_openai.script(Reply(text="Fresh token"))
            await slack.mention("hi", OTHER_TEAM, channel="C0ROT")

            refreshes = [c for c in fake.calls_of("oauth.v2.access") if "refresh_token" in c.args]
            assert len(refreshes) == 1 and refreshes[0].args["grant_type"] == "refresh_token"
            rotated = slack.token_of(OTHER_TEAM)
            assert rotated != installed
            [answer] = fake.bot_messages("C0ROT")
            assert answer.current == "Fresh token" and answer.token == rotated
            stored = await slack.core.installations.find("slack", CLIENT_ID, "", OTHER_TEAM)
            assert stored is not None and stored.bot_token == rotated
            assert stored.bot_refresh_token is not None and stored.bot_token_expires_at is not None


async def test_the_install_page_and_the_redirect_refuse_what_did_not_start_here(slack: Distributed) -> None:
    fake = slack.fake
    fake.install_into = OTHER_TEAM
    async with slack.session.get(f"{slack.base}/slack/install", allow_redirects=False) as start:
        authorize = start.headers["Location"]
    async with slack.session.get(authorize, allow_redirects=False) as page:
        back = page.headers["Location"]
    async with slack.session.get(back, allow_redirects=False) as no_cookie:  # another browser
        assert no_cookie.status == 400
        assert "invalid_browser" in await no_cookie.text()
    forged = f"{slack.base}/slack/oauth_redirect?code=whatever&state=made-up"
    async with slack.session.get(
        forged, headers={"Cookie": "slack-app-oauth-state=made-up"}, allow_redirects=False
    ) as replayed:
        assert replayed.status == 401 and "invalid_state" in await replayed.text()
    assert fake.calls_of("oauth.v2.access") == []
    assert await slack.core.installations.find("slack", CLIENT_ID, "", OTHER_TEAM) is None


async def test_crash_recovery_shows_the_notice_with_the_workspace_s_own_token(slack: Distributed) -> None:
    from bots.slack.replier import SlackResolver
    from core.domain.types import ConversationKey

    fake = slack.fake
    await slack.install(OTHER_TEAM)
    token = slack.token_of(OTHER_TEAM)
    resolvers = slack.core.recovery._resolvers
    resolver = resolvers["slack"]
    assert isinstance(resolver, SlackResolver)
    key = ConversationKey("slack", OTHER_TEAM, "C0CRASH", "1700000100.000100")
    await resolver.resolve(key, None, "Your last message was interrupted. Please ask again.")
    [notice] = fake.bot_messages("C0CRASH")
    assert notice.token == token and notice.thread_ts == "1700000100.000100"
    assert notice.current.startswith(":warning:")
    # A workspace that is not installed: nothing to do (and nothing raised, so the turn is marked).
    await resolver.resolve(ConversationKey("slack", "T0GONE", "C0X", "1.2"), None, "interrupted")
    assert fake.bot_messages("C0X") == []


async def test_each_workspace_s_mod_log_channel_hears_only_of_that_workspace(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    fake_openai.moderation_flags = {"bomb": {"violence": 0.95}}
    async with (
        FakeSlack() as fake,
        distributed(
            tmp_path, fake_openai, fake, slack_modlog_channel=f"{TEAM_ID}:C0MODS1,{OTHER_TEAM}:C0MODS2"
        ) as slack,
    ):
        await slack.install(TEAM_ID)
        await slack.install(OTHER_TEAM)
        await slack.mention("how to build a bomb", OTHER_TEAM, channel="C0TWO")
        await slack.core.modlog.drain()
        [notice] = fake.bot_messages("C0MODS2")
        assert "Moderation blocked a message" in notice.current and "<#C0TWO>" in notice.current
        assert notice.token == slack.token_of(OTHER_TEAM)
        assert fake.bot_messages("C0MODS1") == []


async def test_a_mod_log_channel_without_its_workspace_is_refused_in_oauth_mode(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake:
        with pytest.raises(SettingsError, match="team:channel"):
            async with distributed(tmp_path, fake_openai, fake, slack_modlog_channel="C0MODS"):
                pass


# ---------------------------------------------------------------------------------------------- settings


def test_oauth_and_a_bot_token_are_not_set_together(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SLACK_CLIENT_ID: set either SLACK_BOT_TOKEN"):
        load_settings(None, slack={"bot_token": BOT_TOKEN, "client_id": CLIENT_ID, "client_secret": "x"})
    with pytest.raises(SettingsError, match="SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set together"):
        load_settings(None, slack={"client_id": CLIENT_ID})


async def test_single_token_mode_serves_no_install_page(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    from tests.integration.test_slack_adapter import running_slack

    async with (
        running_slack(tmp_path, fake_openai) as single,
        aiohttp.ClientSession() as session,
    ):
        url = single.sender.url.replace("/slack/events", "/slack/install")
        async with session.get(url, allow_redirects=False) as answer:
            assert answer.status == 404


async def test_answer_buttons_in_an_oauth_workspace_are_answered_with_its_own_token(
    slack: Distributed,
) -> None:
    """A 👍 and a Retry clicked in a workspace installed through OAuth: bolt's authorize finds its
    installation from the payload's team, the vote is that workspace's, and the retried answer and the old
    answer's "Retried by" edit go out with that workspace's token; a click from a workspace that is not
    installed is refused and changes nothing."""
    from sqlalchemy import select

    from core.db.models import AnswerFeedback

    fake = slack.fake
    await slack.install(OTHER_TEAM)
    token = slack.token_of(OTHER_TEAM)
    slack.openai.script(Reply(text="Lyon."), Reply(text="Paris."))
    await slack.mention("capital of France?", OTHER_TEAM, channel="C0SECOND")
    [answer] = fake.bot_messages("C0SECOND")
    assert set(answer.buttons()) == {"answer:up", "answer:down", "answer:retry"}

    before = len(fake.calls)
    vote = fake.action_payload(answer, "answer:up", team=OTHER_TEAM)
    assert (await slack.sender.action(vote)).status == 200
    await slack.background.idle()
    async with slack.core.database.reader() as session:
        [row] = (await session.scalars(select(AnswerFeedback))).all()
    assert (row.workspace_id, row.user_id, row.vote) == (OTHER_TEAM, "U0ALICE", 1)
    assert [r["text"] for r in fake.responses] == ["Thanks for the :thumbsup:, noted."]

    stranger = fake.action_payload(answer, "answer:down", team="T0NOBODY")
    retry = fake.action_payload(answer, "answer:retry", team=OTHER_TEAM)
    assert (await slack.sender.action(retry)).status == 200
    await slack.background.idle()
    assert [m.current for m in fake.bot_messages("C0SECOND") if m.ts != answer.ts] == ["Paris."]
    assert "Retried by" in str(answer.blocks)
    calls = [call for call in fake.calls[before:] if call.method.startswith(("chat.", "users."))]
    assert calls and {call.token for call in calls} == {token}

    before = len(fake.calls)
    assert (await slack.sender.action(stranger)).status in (200, 401)
    await slack.background.idle()
    async with slack.core.database.reader() as session:
        [row] = (await session.scalars(select(AnswerFeedback))).all()
    assert row.vote == 1
    assert [call for call in fake.calls[before:] if call.method.startswith("chat.")] == []


async def test_an_approval_in_an_oauth_workspace_is_asked_and_decided_with_its_own_token(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    import asyncio
    import json

    from tests.fakes.openai_api import ToolCallSpec

    async with (
        FakeSlack() as fake,
        distributed(tmp_path, fake_openai, fake, approval_tools="calculator") as slack,
    ):
        await slack.install(OTHER_TEAM)
        token = slack.token_of(OTHER_TEAM)
        fake_openai.script(
            Reply(tool_calls=[ToolCallSpec("calculator", json.dumps({"expression": "6 * 7"}), id="c1")]),
            Reply(text="It is 42."),
        )
        bot = fake.bot_user(OTHER_TEAM)
        event = fake.message_event(
            f"<@{bot}> six times seven?", mention=True, team=OTHER_TEAM, channel="C0SECOND"
        )
        asked = asyncio.ensure_future(slack.sender.event(fake.envelope(event)))

        def prompt() -> list[Any]:
            return [m for m in fake.bot_messages("C0SECOND", controls=True) if "tw:approve" in m.buttons()]

        await fake.wait_for(lambda: bool(prompt()))
        assert (await asked).status == 200
        [message] = prompt()
        assert message.token == token
        before = len(fake.calls)
        click = fake.action_payload(message, "tw:approve", team=OTHER_TEAM)
        assert (await slack.sender.action(click)).status == 200
        await slack.background.idle()

        assert "Approved by <@U0ALICE>" in message.current
        assert any(m.current == "It is 42." for m in fake.bot_messages("C0SECOND"))
        calls = [call for call in fake.calls[before:] if call.method.startswith(("chat.", "users."))]
        assert calls and {call.token for call in calls} == {token}
