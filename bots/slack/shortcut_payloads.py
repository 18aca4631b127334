"""What a verified message shortcut (``message_action``) may carry, validated like every other Slack payload
(bots/slack/payloads.py): only the fields the adapter and bolt use survive, typed and cleaned. Over HTTP it
arrives as a form whose ``payload`` field is JSON; over Socket Mode as an ``interactive`` envelope."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from pydantic import ValidationError

from bots.slack.payloads import Id, Model, Name, Short, Ts, Url, Verdict, _fields, _kept

log = logging.getLogger(__name__)

MAX_PAYLOAD_CHARS = 200_000  # a message of 40,000 characters with its blocks, escaped, and the rest


class Team(Model):
    id: Id
    domain: Short | None = None


class Actor(Model):
    id: Id
    team_id: Id | None = None
    name: Short | None = None
    username: Short | None = None


class Channel(Model):
    id: Id
    name: Short | None = None


class PickedMessage(Model):
    """The message the shortcut was used on."""

    type: Name | None = None
    subtype: Name | None = None
    user: Id | None = None
    bot_id: Id | None = None
    text: str | None = None
    ts: Ts
    thread_ts: Ts | None = None


class MessageAction(Model):
    type: Literal["message_action"]
    callback_id: Name
    trigger_id: Id | None = None
    action_ts: Ts
    message_ts: Ts
    team: Team
    user: Actor
    channel: Channel
    message: PickedMessage
    response_url: Url
    token: Short | None = None
    api_app_id: Id | None = None
    is_enterprise_install: bool | None = None


def interactive(payload: Any) -> Verdict:
    """An interactivity payload (the dict) as bolt gets it in Socket Mode; kinds not served answer 400."""
    if not isinstance(payload, dict) or payload.get("type") != "message_action":
        return Verdict(status=400, answer={"error": "unsupported request"})
    try:
        valid = MessageAction.model_validate(payload)
    except ValidationError as exc:
        log.info("Slack message shortcut ignored: invalid %s", _fields(exc))
        return Verdict(answer={})
    return Verdict(payload=_kept(valid))


def interactive_form(raw: str) -> Verdict:
    """The ``payload`` field of a form-encoded interactivity request (HTTP), rebuilt as such for bolt."""
    if len(raw) > MAX_PAYLOAD_CHARS:
        return Verdict(status=413, answer={"error": "payload too large"})
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return Verdict(status=400, answer={"error": "malformed JSON"})
    verdict = interactive(payload)
    if verdict.payload is None:
        return verdict
    return Verdict(payload={"payload": json.dumps(verdict.payload)}, form=True)
