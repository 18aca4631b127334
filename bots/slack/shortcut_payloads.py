"""What a verified message shortcut (``message_action``) may carry, validated like every other Slack payload
(bots/slack/payloads.py): only the fields the adapter and bolt use survive, typed and cleaned. Over HTTP it
arrives as a form whose ``payload`` field is JSON; over Socket Mode as an ``interactive`` envelope."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import ValidationError

from bots.slack.payloads import Id, Model, Name, Short, Ts, Url, Verdict, _fields, _kept

log = logging.getLogger(__name__)


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


def message_action(payload: dict[str, Any]) -> Verdict:
    """A message shortcut's payload (the dict), validated; one that does not validate is acknowledged and
    dropped."""
    try:
        valid = MessageAction.model_validate(payload)
    except ValidationError as exc:
        log.info("Slack message shortcut ignored: invalid %s", _fields(exc))
        return Verdict(answer={})
    return Verdict(payload=_kept(valid))
