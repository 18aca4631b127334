"""Tool approval on Slack: the request is a Block Kit message in the conversation's thread (the tool, its
redacted arguments, Approve / Deny buttons whose ``value`` is the approval id); a click arrives as a
``block_actions`` payload at ``POST /slack/events`` (verified like every request), is recorded through the
core (whichever replica gets it) and the message is updated to show the decision. A click from anyone but
the asker or an admin gets an ephemeral refusal and changes nothing."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.inflight import InFlight
from bots.slack.mrkdwn import escape
from bots.slack.workspaces import Workspaces
from core.domain.ports import ApprovalDecision, ApprovalRequest, ReplyLocation
from core.tools.approvals import APPROVED, DENIED, STOPPED, TIMED_OUT, Approvals, outcome_sentence

log = logging.getLogger(__name__)

APPROVE, DENY = "tw:approve", "tw:deny"
ACTIONS = re.compile(r"^tw:(approve|deny)$")
BLOCK_ID = "tw_approval"

TokenOf = Callable[[str], Awaitable[str | None]]


def _thread(key_thread: str) -> str | None:
    seconds, dot, fraction = key_thread.partition(".")
    return key_thread if dot and seconds.isdigit() and fraction.isdigit() else None


def request_text(request: ApprovalRequest) -> str:
    arguments = request.arguments.replace("```", "` ` `") or "{}"
    return (
        f":lock: <@{request.user.user_id}>, I would like to run the tool *{escape(request.tool)}* with:\n"
        f"```{escape(arguments)}```\n"
        f"It runs only if you approve (within {request.timeout:g} s)."
    )


MARKS = {  # Slack's emoji codes, before what became of a request
    APPROVED: ":white_check_mark:",
    DENIED: ":no_entry_sign:",
    TIMED_OUT: ":hourglass:",
    STOPPED: ":black_square_for_stop:",
}


def outcome_text(tool: str, decision: ApprovalDecision, timeout: float) -> str:
    sentence = outcome_sentence(f"*{escape(tool)}*", decision, timeout)
    mark = MARKS.get(decision.status)
    return f"{mark} {sentence}" if mark else sentence


def request_blocks(request: ApprovalRequest) -> list[dict[str, Any]]:
    value = str(request.id)
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": request_text(request)}},
        {
            "type": "actions",
            "block_id": BLOCK_ID,
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE,
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": value,
                },
                {
                    "type": "button",
                    "action_id": DENY,
                    "text": {"type": "plain_text", "text": "Deny"},
                    "style": "danger",
                    "value": value,
                },
            ],
        },
    ]


def outcome_blocks(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


class SlackApprovalPrompter:
    """The core's ApprovalPrompter on Slack. ``token_of`` (OAuth mode) gives the bot token of the
    conversation's workspace; without it ``client``'s token is used."""

    def __init__(self, client: AsyncWebClient, token_of: TokenOf | None = None) -> None:
        self._client = client
        self._token_of = token_of

    async def _options(self, workspace_id: str) -> dict[str, Any] | None:
        if self._token_of is None:
            return {}
        token = await self._token_of(workspace_id)
        return {"token": token} if token else None

    async def ask(self, request: ApprovalRequest) -> ReplyLocation | None:
        options = await self._options(request.key.workspace_id)
        if options is None:
            raise LookupError(f"Slack workspace {request.key.workspace_id} is not installed")
        text = request_text(request)
        answer = await self._client.chat_postMessage(
            channel=request.key.channel_id,
            thread_ts=_thread(request.key.thread_id),
            text=text,
            blocks=request_blocks(request),
            **options,
        )
        return {"channel": str(answer["channel"]), "ts": str(answer["ts"])}

    async def close(
        self, request: ApprovalRequest, where: ReplyLocation | None, decision: ApprovalDecision
    ) -> None:
        options = await self._options(request.key.workspace_id)
        if where is None or options is None:
            return
        text = outcome_text(request.tool, decision, request.timeout)
        await self._client.chat_update(
            channel=where["channel"], ts=where["ts"], text=text, blocks=outcome_blocks(text), **options
        )


class ApprovalClicks:
    """The Approve / Deny buttons' listener: acknowledged at once, the decision recorded and shown in the
    background (tracked, drained at shutdown)."""

    def __init__(self, approvals: Approvals, workspaces: Workspaces, background: InFlight) -> None:
        self._approvals = approvals
        self._workspaces = workspaces
        self._background = background

    def register(self, app: AsyncApp) -> None:
        app.action(ACTIONS)(self.on_click)

    async def on_click(
        self,
        ack: Callable[[], Awaitable[Any]],
        body: dict[str, Any],
        action: dict[str, Any],
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        self._background.spawn(self._decide(body, action, context), name="slack-approval-click")

    async def _decide(self, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext) -> None:
        value = str(action.get("value") or "")
        user_id = str((body.get("user") or {}).get("id") or "")
        container = body.get("container") or {}
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
        ts = str(container.get("message_ts") or (body.get("message") or {}).get("ts") or "")
        workspace = self._workspaces.of(context)
        team = str((body.get("team") or {}).get("id") or context.team_id or "")
        if not value.isdigit() or not user_id or not channel:
            return
        user = await workspace.directory.user(user_id)
        click = await self._approvals.decide(
            int(value), user, approve=action.get("action_id") == APPROVE, workspace_id=team
        )
        client = workspace.client
        thread = (body.get("message") or {}).get("thread_ts") or container.get("thread_ts")
        try:
            if click.outcome == "decided" and click.decision is not None and click.request is not None:
                text = outcome_text(click.request.tool, click.decision, click.request.timeout)
                if ts:
                    await client.chat_update(channel=channel, ts=ts, text=text, blocks=outcome_blocks(text))
                return
            if click.outcome == "refused" and click.request is not None:
                text = (
                    f"Sorry, only <@{click.request.user.user_id}> (who asked) or an admin can approve "
                    "or deny this."
                )
            elif click.outcome == "closed" and click.decision is not None and click.request is not None:
                text = "This request is already closed: " + outcome_text(
                    click.request.tool, click.decision, click.request.timeout
                )
            else:
                text = "This approval request is no longer known."
            await client.chat_postEphemeral(channel=channel, user=user_id, text=text, thread_ts=thread)
        except SlackApiError as exc:
            log.warning("could not answer an approval click: %s", exc.response.get("error"))
