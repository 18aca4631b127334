"""The App Home tab: on ``app_home_opened`` the viewer's page is published with ``views.publish``, with the
token of their own workspace (bots/slack/workspaces.py), from core/commands/home.py's numbers.

Slack sends the event each time someone opens the tab, so opens are debounced per user: one publish at a
time, and none again within ``debounce`` seconds of the last (the page would show the same numbers). The
work of one open is bounded: a users.info (cached), a few indexed queries, one views.publish.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError

from bots.slack.identity import PLATFORM
from bots.slack.mrkdwn import escape
from bots.slack.workspaces import Workspace
from core.commands.home import HomeView, budget_line, usage_line
from core.domain.errors import BotError
from core.domain.types import ConversationKey
from core.money.pricing import format_usd

if TYPE_CHECKING:
    from bots.slack.events import Conversations

log = logging.getLogger(__name__)

DEBOUNCE = 10.0  # seconds: a page is published at most this often per user
REMEMBERED = 10_000  # users whose last publish is remembered (least recent forgotten first)
SHORTCUT_NAME = "Ask Threadwise about this"


def home_blocks(view: HomeView) -> list[dict[str, Any]]:
    """The Block Kit blocks of ``view``'s page."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Threadwise"}},
        _section(
            "Mention me in a channel or send me a direct message: I answer in the thread, and every later "
            f"message there continues the conversation. On any message, *More actions* → *{SHORTCUT_NAME}* "
            "explains it in its thread. `/ai help` lists the commands."
        ),
        {"type": "divider"},
        _section("*Your usage*\n" + "\n".join(usage_line(period) for period in view.usage)),
    ]
    if view.budgets:
        lines = "\n".join(f"• {escape(budget_line(standing, view.now))}" for standing in view.budgets)
        blocks.append(_section("*What is left of your budgets*\n" + lines))
    else:
        blocks.append(_section("*Budgets*\nNo budget limits apply to you."))
    models = ", ".join(
        f"`{escape(model)}`" + (" (default)" if model == view.default_model else "") for model in view.models
    )
    blocks.append(_section(f"*Models you can pick*\n{models}\nIn a conversation: `/ai model <name>`."))
    spend = view.workspace
    if spend is not None:
        top = "\n".join(
            f"• {f'<@{user.user_id}>' if user.user_id else '(erased)'}: {format_usd(user.micros)} "
            f"({user.tokens:,} tokens)"
            for user in spend.top_users
        )
        blocks += [
            {"type": "divider"},
            _section(
                "*This workspace (admins only)*\n"
                f"Today: {format_usd(spend.today_micros)} ({spend.today_tokens:,} tokens)\n"
                f"This month: {format_usd(spend.month_micros)} ({spend.month_tokens:,} tokens)"
                + (f"\n*Top users this month*\n{top}" if top else "")
            ),
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "`/ai-admin report` for the full report and a CSV."}],
            },
        ]
    return blocks


def refused_blocks(error: BotError) -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Threadwise"}},
        _section(f":warning: {escape(error.user_message)}"),
    ]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


class AppHome:
    def __init__(
        self,
        conversations: Conversations,
        *,
        debounce: float = DEBOUNCE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conversations = conversations
        self._debounce = debounce
        self._clock = clock
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._publishing: set[tuple[str, str]] = set()

    def register(self, app: AsyncApp) -> None:
        app.event("app_home_opened")(self.on_opened)

    async def on_opened(self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext) -> None:
        user_id = event.get("user")
        if event.get("tab", "home") != "home" or not user_id:
            return  # the Messages tab is the DM: nothing to publish
        team = str(body.get("team_id") or context.team_id or "")
        who = (team, str(user_id))
        if who in self._publishing or not self._due(who):
            return
        workspace = self._conversations.workspaces.of(context)
        self._publishing.add(who)
        self._conversations.background.spawn(self._publish(who, workspace), name=f"slack home {user_id}")

    def _due(self, who: tuple[str, str]) -> bool:
        last = self._last.get(who)
        return last is None or self._clock() - last >= self._debounce

    async def _publish(self, who: tuple[str, str], workspace: Workspace) -> None:
        team, user_id = who
        try:
            user = await workspace.directory.user(user_id)
            try:
                view = await self._conversations.services.commands.home(
                    user, ConversationKey(PLATFORM, team, "", "")
                )
                blocks = home_blocks(view)
            except BotError as error:  # banned: the page says so, and nothing else
                blocks = refused_blocks(error)
            await workspace.client.views_publish(user_id=user_id, view={"type": "home", "blocks": blocks})
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", user_id, exc.response.get("error"))
        finally:
            self._publishing.discard(who)
            self._last[who] = self._clock()
            self._last.move_to_end(who)
            while len(self._last) > REMEMBERED:
                self._last.popitem(last=False)
