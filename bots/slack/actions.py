"""Interactivity: every button click (a ``block_actions`` payload, at ``POST /slack/events`` or over Socket
Mode) comes through one bolt listener and is routed by its ``action_id`` prefix, the part before ":", to the
handler registered for it (``answer`` for an answer's buttons, bots/slack/answer_clicks.py). The click is
acknowledged at once and handled in the background. A new kind of button registers its own prefix."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bots.inflight import InFlight
from bots.slack.workspaces import Workspace, Workspaces

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Click:
    """One button click, as its handler needs it."""

    verb: str  # the action_id after "<prefix>:"
    value: str  # the button's value
    action_ts: str  # when Slack saw the click: one per click (a replayed payload repeats it)
    user_id: str  # who clicked
    user_name: str | None  # their Slack user name, as the payload tells it
    team_id: str
    channel_id: str | None
    message_ts: str | None  # the message the button is on
    message: dict[str, Any]  # that message as the payload shows it (ts, text, blocks)
    workspace: Workspace
    respond: AsyncRespond  # answers through the payload's response_url (ephemeral by default)


ClickHandler = Callable[[Click], Coroutine[Any, Any, None]]


class Actions:
    def __init__(self, workspaces: Workspaces, background: InFlight) -> None:
        self._workspaces = workspaces
        self._background = background
        self._routes: dict[str, ClickHandler] = {}

    def route(self, prefix: str, handler: ClickHandler) -> None:
        """Clicks on buttons whose action_id is ``<prefix>:<verb>`` go to ``handler``."""
        self._routes[prefix] = handler

    def register(self, app: AsyncApp) -> None:
        """Listen for the prefixes routed so far (other buttons are left to their own listeners)."""
        prefixes = "|".join(re.escape(prefix) for prefix in sorted(self._routes))
        app.action(re.compile(rf"^(?:{prefixes}):"))(self.on_action)

    async def on_action(
        self,
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        context: AsyncBoltContext,
        respond: AsyncRespond,
    ) -> None:
        await ack()
        prefix, _, verb = str(action.get("action_id") or "").partition(":")
        handler = self._routes.get(prefix)
        if handler is None:
            log.info("Slack click on an unknown button %s ignored", prefix)
            return
        user = body.get("user") or {}
        container = body.get("container") or {}
        message = body.get("message") or {}
        click = Click(
            verb=verb,
            value=str(action.get("value") or ""),
            action_ts=str(action.get("action_ts") or ""),
            user_id=str(user.get("id") or ""),
            user_name=user.get("username") or user.get("name"),
            team_id=str((body.get("team") or {}).get("id") or user.get("team_id") or ""),
            channel_id=(body.get("channel") or {}).get("id") or container.get("channel_id"),
            message_ts=container.get("message_ts") or message.get("ts"),
            message=message,
            workspace=self._workspaces.of(context),
            respond=respond,
        )
        self._background.spawn(handler(click), name=f"slack click {prefix}:{verb}")
