"""What a verified Slack request may carry, validated into typed values before bolt or our code reads it.

Only the fields the adapter and bolt use survive, each with its type checked, lone surrogates and NULs
replaced, and bolt gets a body rebuilt from them. A body that is no JSON object or form answers 400; an event
that does not validate is ignored (200: Slack would only retry it); a slash command that does not validate
tells the user so in the HTTP answer. Nothing logged here names a value, only field names.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from bots.cleaning import clean, clean_all

log = logging.getLogger(__name__)

DELIVERY = "threadwise_delivery"  # bolt context key: the verified request's signature
MAX_FORM_FIELDS = 100
MAX_COMMAND_TEXT = 40_000  # Slack caps a message at 40,000 characters; the input limit guard applies its own
MAX_INTERACTIVE_CHARS = 200_000  # a message of 40,000 characters with its blocks, escaped, and the rest
INCOMPLETE = ":warning: That command arrived incomplete or malformed, so I ignored it. Please try again."
TOO_LONG = f":warning: That is too long for a command (at most {MAX_COMMAND_TEXT:,} characters)."

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
Ts = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}(\.[0-9]{1,9})?$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
Short = Annotated[str, StringConstraints(max_length=2_000)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[!-~]{1,2000}$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class File(Model):
    id: Id | None = None
    name: Short | None = None
    title: Short | None = None
    mimetype: Short | None = None
    filetype: Short | None = None
    mode: Short | None = None
    size: int | None = Field(default=None, ge=0)
    url_private: Url | None = None
    url_private_download: Url | None = None
    file_access: Short | None = None


class BotProfile(Model):
    id: Id | None = None
    name: Short | None = None


class ThreadContext(Model):
    channel_id: Id | None = None
    team_id: Id | None = None
    enterprise_id: Id | None = None


class AssistantThread(Model):
    user_id: Id | None = None
    channel_id: Id
    thread_ts: Ts
    context: ThreadContext = ThreadContext()


class RevokedTokens(Model):
    """``tokens_revoked``: whose tokens were revoked (user ids), OAuth user tokens and bot tokens."""

    oauth: list[Id] = Field(default_factory=list, max_length=1_000)
    bot: list[Id] = Field(default_factory=list, max_length=1_000)


class Event(Model):
    type: Name
    subtype: Name | None = None
    user: Id | None = None
    bot_id: Id | None = None
    bot_profile: BotProfile | None = None
    hidden: bool | None = None
    text: str | None = None
    ts: Ts | None = None
    thread_ts: Ts | None = None
    event_ts: Ts | None = None
    channel: Id | None = None
    channel_type: Name | None = None
    team: Id | None = None
    files: list[File] | None = Field(default=None, max_length=100)
    assistant_thread: AssistantThread | None = None
    tokens: RevokedTokens | None = None
    tab: Name | None = None  # app_home_opened: "home" or "messages"

    @model_validator(mode="after")
    def _where(self) -> Event:
        if self.type in ("message", "app_mention") and (self.channel is None or self.ts is None):
            raise ValueError("a message needs its channel and ts")
        return self


class Authorization(Model):
    enterprise_id: Id | None = None
    team_id: Id | None = None
    user_id: Id | None = None
    is_bot: bool | None = None
    is_enterprise_install: bool | None = None


class Envelope(Model):
    type: Literal["event_callback"]
    token: Short | None = None
    team_id: Id | None = None
    enterprise_id: Id | None = None
    context_team_id: Id | None = None
    context_enterprise_id: Id | None = None
    api_app_id: Id | None = None
    event_id: Id | None = None
    event_time: int | None = None
    authorizations: list[Authorization] | None = Field(default=None, max_length=10)
    is_ext_shared_channel: bool | None = None
    event: Event


class Challenge(Model):
    type: Literal["url_verification"]
    token: Short | None = None
    challenge: Short


class SlashCommand(Model):
    command: Annotated[str, StringConstraints(pattern=r"^/[a-z0-9_-]{1,32}$")]
    text: str = ""
    user_id: Id
    channel_id: Id
    team_id: Id | None = None
    enterprise_id: Id | None = None
    response_url: Url
    trigger_id: Id | None = None
    user_name: Short | None = None
    team_domain: Short | None = None
    channel_name: Short | None = None
    api_app_id: Id | None = None
    is_enterprise_install: Literal["true", "false"] | None = None
    token: Short | None = None


class ActionUser(Model):
    id: Id
    username: Short | None = None
    name: Short | None = None
    team_id: Id | None = None


class ActionTeam(Model):
    id: Id
    domain: Short | None = None
    enterprise_id: Id | None = None


class ActionChannel(Model):
    id: Id
    name: Short | None = None


class Container(Model):
    type: Name
    message_ts: Ts | None = None
    channel_id: Id | None = None
    thread_ts: Ts | None = None
    is_ephemeral: bool | None = None


class ActionMessage(Model):
    """The message a button is on: where it is, and its blocks (to show it again with buttons changed)."""

    ts: Ts
    thread_ts: Ts | None = None
    user: Id | None = None
    bot_id: Id | None = None
    text: str | None = None
    blocks: list[dict[str, Any]] | None = Field(default=None, max_length=50)


class Action(Model):
    type: Name
    action_id: Name
    block_id: Short | None = None
    value: Short | None = None
    action_ts: Ts | None = None


class Enterprise(Model):
    id: Id
    name: Short | None = None


class BlockActions(Model):
    """A click on a button (an interactivity payload of type ``block_actions``)."""

    type: Literal["block_actions"]
    user: ActionUser
    team: ActionTeam | None = None
    enterprise: Enterprise | None = None
    channel: ActionChannel | None = None
    container: Container | None = None
    message: ActionMessage | None = None
    response_url: Url | None = None
    trigger_id: Short | None = None
    actions: list[Action] = Field(min_length=1, max_length=5)
    api_app_id: Id | None = None
    token: Short | None = None
    is_enterprise_install: bool | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Either ``payload`` (the validated values, for bolt) or an answer of our own."""

    payload: dict[str, Any] | None = None
    form: bool = False  # a slash command (form-encoded over HTTP)
    status: int = 200
    answer: dict[str, Any] | None = None

    @property
    def body(self) -> str | None:
        """``payload`` as an HTTP body of ``content_type``."""
        if self.payload is None:
            return None
        return urlencode(self.payload) if self.form else json.dumps(self.payload)

    @property
    def content_type(self) -> str:
        return "application/x-www-form-urlencoded" if self.form else "application/json"


def _fields(error: ValidationError) -> str:
    return ", ".join(sorted({".".join(str(part) for part in e["loc"]) or "body" for e in error.errors()}))


def judge(raw: bytes, content_type: str) -> Verdict:
    """What to do with a verified body of ``content_type``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Verdict(status=400, answer={"error": "not UTF-8"})
    if content_type == "application/json":
        return _json(text)
    if content_type == "application/x-www-form-urlencoded":
        return _form(text)
    return Verdict(status=400, answer={"error": "unsupported content type"})


def _json(text: str) -> Verdict:
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return Verdict(status=400, answer={"error": "malformed JSON"})
    if not isinstance(payload, dict):
        return Verdict(status=400, answer={"error": "not a JSON object"})
    return envelope(payload)


def envelope(payload: dict[str, Any]) -> Verdict:
    """An Events API body (HTTP) or ``events_api`` payload (Socket Mode)."""
    kind = payload.get("type")
    model: type[Model]
    if kind == "event_callback":
        model = Envelope
    elif kind == "url_verification":
        model = Challenge
    elif kind == "app_rate_limited":
        return Verdict(answer={})
    else:
        return Verdict(status=400, answer={"error": "unsupported request"})
    try:
        valid = model.model_validate(payload)
    except ValidationError as exc:
        log.info("Slack %s ignored: invalid %s", kind, _fields(exc))
        return Verdict(answer={})
    return Verdict(payload=_kept(valid))


def _kept(valid: Model) -> dict[str, Any]:
    kept = valid.model_dump(exclude_none=True)
    clean_all(kept)  # only what was kept: fields that are dropped cost no walk
    return kept


def _form(text: str) -> Verdict:
    try:
        form = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="replace")
    except ValueError:
        return Verdict(status=400, answer={"error": "malformed form"})
    fields = {key: clean(values[0]) for key, values in form.items()}
    if "ssl_check" in fields:
        return Verdict(answer={})
    if "payload" in fields and "command" not in fields:  # interactivity: a click or a message shortcut
        return _interactive_form(str(fields["payload"]))
    if "command" not in fields:
        return Verdict(status=400, answer={"error": "unsupported request"})
    return command(fields)


def command(fields: dict[str, Any]) -> Verdict:
    """A slash command's fields (a form over HTTP, a ``slash_commands`` payload in Socket Mode)."""
    try:
        valid = SlashCommand.model_validate(fields)
    except ValidationError as exc:
        log.info("Slack slash command ignored: invalid %s", _fields(exc))
        return Verdict(answer={"response_type": "ephemeral", "text": INCOMPLETE})
    if len(valid.text) > MAX_COMMAND_TEXT:
        return Verdict(answer={"response_type": "ephemeral", "text": TOO_LONG})
    return Verdict(payload=_kept(valid), form=True)


def _interactive_form(text: str) -> Verdict:
    """The ``payload`` field of a form-encoded interactivity request (HTTP), rebuilt as such for bolt."""
    if len(text) > MAX_INTERACTIVE_CHARS:
        return Verdict(status=413, answer={"error": "payload too large"})
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        return Verdict(status=400, answer={"error": "malformed payload"})
    if not isinstance(payload, dict):
        return Verdict(status=400, answer={"error": "malformed payload"})
    verdict = interactive(payload)
    if verdict.payload is None:
        return verdict
    return Verdict(payload={"payload": json.dumps(verdict.payload)}, form=True)


def interactive(payload: dict[str, Any]) -> Verdict:
    """An interactivity payload: a button click (``block_actions``) or a message shortcut (``message_action``,
    bots/slack/shortcut_payloads.py); kinds the app does not serve answer 400."""
    kind = payload.get("type")
    if kind == "message_action":
        from bots.slack.shortcut_payloads import message_action

        return message_action(payload)
    if kind != "block_actions":
        return Verdict(status=400, answer={"error": "unsupported request"})
    try:
        valid = BlockActions.model_validate(payload)
    except ValidationError as exc:
        log.info("Slack block_actions ignored: invalid %s", _fields(exc))
        return Verdict(answer={})
    return Verdict(payload=_kept(valid))


def socket_payload(kind: str, payload: Any) -> Verdict:
    """A Socket Mode request's payload; kinds the app does not serve are only acknowledged."""
    if isinstance(payload, dict) and kind == "interactive":
        return interactive(payload)
    if isinstance(payload, dict) and kind == "events_api":
        return envelope(payload)
    if isinstance(payload, dict) and kind == "slash_commands":
        return command(payload)
    return Verdict(answer={})
