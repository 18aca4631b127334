"""What the Discord gateway may deliver for the two events the adapter acts on, MESSAGE_CREATE and
INTERACTION_CREATE, validated into typed values before discord.py or our code reads them.

Only the fields discord.py needs to build the message or interaction the adapter uses survive, each with its
type checked and its strings cleaned (lone surrogates become U+FFFD, NULs are dropped); discord.py gets a
payload rebuilt from them, with the defaults it indexes filled in. Embeds, polls, references and the like are
dropped: the adapter reads none of them. Interactions pass when they are application commands (type 2) or
clicks on a button (type 3, component type 2) of a message whose components are rows of buttons (the only
components the adapter sends; discord.py rebuilds the clicked view from them); menus, modals and
autocomplete do not. Nothing logged here names a value, only fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
    model_validator,
)

from bots.cleaning import clean_all

MAX_INT = 2**63 - 1
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # what a server without boosts takes per file
THREAD_TYPES = frozenset({10, 11, 12})
CHANNEL_TYPES = frozenset({0, 1, 2, 5, 10, 11, 12, 13, 15, 16})  # text, DM, voice, news, threads, stage…
COMMAND_OPTION_DEPTH = 3  # a group, its subcommand, the subcommand's options


def _iso(text: str) -> str:
    datetime.fromisoformat(text)  # what discord.py parses it with; ValueError -> a validation error
    return text


def _no_dots(text: str) -> str:
    if text.strip(".") == "":
        raise ValueError("not a token")
    return text


Snowflake = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
Permissions = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,40}$")]
Short = Annotated[str, StringConstraints(max_length=2_000)]
Long = Annotated[str, StringConstraints(max_length=8_000)]
Timestamp = Annotated[str, StringConstraints(max_length=64), AfterValidator(_iso)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[!-~]{1,2000}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:=+-]{1,1000}$"), AfterValidator(_no_dots)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
Small = Annotated[int, Field(ge=0, le=1_000)]
OptionName = Annotated[str, StringConstraints(min_length=1, max_length=32)]


class Model(BaseModel):
    """Strict types (a number is no string, a string no number); unknown fields are dropped."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)
    # Keys discord.py indexes even where their value is null: kept (as null) when the rest drops nulls.
    keep_null: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _with_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self.keep_null:
            data.setdefault(key, None)
        return data


class User(Model):
    keep_null = ("avatar",)

    id: Snowflake
    username: Short
    discriminator: Annotated[str, StringConstraints(max_length=10)] = "0"
    global_name: Short | None = None
    avatar: Short | None = None
    bot: bool = False
    system: bool = False
    public_flags: Count = 0


class Member(Model):
    """A member as a message carries it (no ``user``: the message's author is that user)."""

    roles: list[Snowflake] = Field(default_factory=list, max_length=1_000)
    nick: Short | None = None
    avatar: Short | None = None
    joined_at: Timestamp | None = None
    premium_since: Timestamp | None = None
    communication_disabled_until: Timestamp | None = None
    pending: bool = False
    flags: Count = 0
    permissions: Permissions | None = None


class Mention(User):
    member: Member | None = None


class Attachment(Model):
    id: Snowflake
    filename: Annotated[str, StringConstraints(min_length=1, max_length=1_024)]
    size: Count
    url: Url
    proxy_url: Url
    content_type: Short | None = None
    description: Short | None = None
    height: Count | None = None
    width: Count | None = None
    ephemeral: bool = False
    flags: Count = 0


class MessageCreate(Model):
    id: Snowflake
    channel_id: Snowflake
    guild_id: Snowflake | None = None
    webhook_id: Snowflake | None = None
    application_id: Snowflake | None = None
    author: User
    member: Member | None = None
    content: str = ""  # any length: the turn's input limit answers one that is too long
    type: Small = 0
    flags: Count = 0
    tts: bool = False
    mention_everyone: bool = False
    pinned: bool = False
    mentions: list[Mention] = Field(default_factory=list, max_length=100)
    mention_roles: list[Snowflake] = Field(default_factory=list, max_length=1_000)
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    timestamp: Timestamp | None = None
    edited_timestamp: Timestamp | None = None


class Option(Model):
    """A command option: a subcommand (group) holding options, or a value of the option's type."""

    name: OptionName
    type: Annotated[int, Field(ge=1, le=11)]
    value: str | int | float | bool | None = None  # strings of any length: the commands bound what they echo
    options: list[Option] = Field(default_factory=list, max_length=25)
    focused: bool = False

    @model_validator(mode="after")
    def _typed(self) -> Option:
        if self.type in (1, 2):
            if self.value is not None:
                raise ValueError("a subcommand has no value")
            return self
        if self.options:
            raise ValueError("a value has no options")
        value = self.value
        if self.type == 3:
            ok = isinstance(value, str)
        elif self.type == 4:
            ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53
        elif self.type == 5:
            ok = isinstance(value, bool)
        elif self.type == 10:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:  # user, channel, role, mentionable, attachment: a snowflake
            ok = isinstance(value, str) and re.fullmatch(r"[0-9]{1,20}", value) is not None
        if not ok:
            raise ValueError("the value does not have the option's type")
        return self


def _depth(options: list[Option]) -> int:
    """How deep ``options`` nest (iteratively: depth costs no stack)."""
    deepest, stack = 0, [(options, 1)]
    while stack:
        items, level = stack.pop()
        if items:
            deepest = max(deepest, level)
            stack.extend((option.options, level + 1) for option in items)
    return deepest


class Resolved(Model):
    """What a message command (type 3, e.g. "Ask Threadwise") was used on: the message, as MESSAGE_CREATE has
    it (bots/discord/context_menu.py)."""

    messages: dict[Snowflake, MessageCreate] = Field(default_factory=dict, max_length=1)


class CommandData(Model):
    id: Snowflake
    name: OptionName
    type: Annotated[int, Field(ge=1, le=3)] = 1
    guild_id: Snowflake | None = None
    target_id: Snowflake | None = None
    options: list[Option] = Field(default_factory=list, max_length=25)
    resolved: Resolved | None = None

    @model_validator(mode="after")
    def _shallow(self) -> CommandData:
        if _depth(self.options) > COMMAND_OPTION_DEPTH:
            raise ValueError("options nested deeper than Discord nests them")
        if self.type == 3 and (
            self.target_id is None or self.resolved is None or self.target_id not in self.resolved.messages
        ):
            raise ValueError("a message command needs its target message")
        return self


class ThreadMetadata(Model):
    keep_null = ("archive_timestamp",)

    archived: bool = False
    auto_archive_duration: Count = 1440
    archive_timestamp: Timestamp | None = None
    create_timestamp: Timestamp | None = None
    locked: bool = False
    invitable: bool = True


class InteractionChannel(Model):
    """The channel an interaction came from, with what discord.py needs to build it when it is not cached."""

    id: Snowflake
    type: Small
    guild_id: Snowflake | None = None
    name: Short = ""
    parent_id: Snowflake | None = None
    owner_id: Snowflake | None = None
    position: int = Field(default=0, ge=-MAX_INT, le=MAX_INT)
    nsfw: bool = False
    topic: Long | None = None
    rate_limit_per_user: Count = 0
    last_message_id: Snowflake | None = None
    flags: Count = 0
    permissions: Permissions | None = None
    bitrate: Count = 64_000
    user_limit: Count = 0
    message_count: Count = 0
    member_count: Count = 0
    thread_metadata: ThreadMetadata | None = None
    recipients: list[User] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _known(self) -> InteractionChannel:
        if self.type not in CHANNEL_TYPES:
            raise ValueError("a channel type commands are not used in")
        if self.type in THREAD_TYPES and (
            self.parent_id is None or self.owner_id is None or self.thread_metadata is None
        ):
            raise ValueError("a thread needs its parent, owner and metadata")
        return self


class InteractionMember(Member):
    user: User
    permissions: Permissions = "0"


class InteractionKey(Model):
    """What it takes to answer an interaction at all."""

    id: Snowflake
    application_id: Snowflake
    token: Token
    type: Annotated[int, Field(ge=1, le=5)]


class Emoji(Model):
    keep_null = ("id",)

    id: Snowflake | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    animated: bool = False


class Button(Model):
    type: Literal[2]
    style: Annotated[int, Field(ge=1, le=6)]
    custom_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    label: Annotated[str, StringConstraints(max_length=80)] | None = None
    emoji: Emoji | None = None
    url: Url | None = None
    disabled: bool = False
    id: Count | None = None


class ActionRow(Model):
    type: Literal[1]
    components: list[Button] = Field(min_length=1, max_length=5)
    id: Count | None = None


class ClickedMessage(MessageCreate):
    """The message a clicked button is on, with its buttons (an interaction's ``message``)."""

    components: list[ActionRow] = Field(default_factory=list, max_length=5)


class ComponentData(Model):
    custom_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    component_type: Literal[2]  # a button: the only component the adapter sends


class _Interaction(InteractionKey):
    """What every interaction the adapter serves carries besides its ``data``."""

    version: Small = 1
    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    channel: InteractionChannel
    member: InteractionMember | None = None
    user: User | None = None
    app_permissions: Permissions | None = None
    locale: Annotated[str, StringConstraints(max_length=16)] | None = None
    guild_locale: Annotated[str, StringConstraints(max_length=16)] | None = None
    attachment_size_limit: Count = DEFAULT_UPLOAD_LIMIT
    context: Annotated[int, Field(ge=0, le=2)] | None = None

    @model_validator(mode="after")
    def _someone(self) -> _Interaction:
        if self.guild_id is not None and self.member is None:
            raise ValueError("an interaction in a server comes from a member")
        if self.guild_id is None and self.user is None:
            raise ValueError("an interaction outside a server comes from a user")
        return self


class InteractionCreate(_Interaction):
    data: CommandData

    @model_validator(mode="after")
    def _command(self) -> InteractionCreate:
        if self.type != 2:
            raise ValueError("only application commands are served")
        return self


class ComponentInteraction(_Interaction):
    data: ComponentData
    message: ClickedMessage

    @model_validator(mode="after")
    def _click(self) -> ComponentInteraction:
        if self.type != 3:
            raise ValueError("only clicks on buttons are served")
        return self


@dataclass(frozen=True, slots=True)
class Checked:
    """``payload``: what discord.py may read; else ``fields`` names what did not validate."""

    payload: dict[str, Any] | None
    fields: str = ""


def _fields(error: ValidationError) -> str:
    names = {".".join(str(part) for part in e["loc"] if not isinstance(part, int)) for e in error.errors()}
    return ", ".join(sorted(name or "payload" for name in names))


def _checked(model: type[Model], data: Any) -> Checked:
    try:
        valid = model.model_validate(data)
    except ValidationError as exc:
        return Checked(None, _fields(exc))
    payload = valid.model_dump(exclude_none=True)
    clean_all(payload)
    return Checked(payload)


def message_create(data: Any) -> Checked:
    """A MESSAGE_CREATE dispatch's data."""
    return _checked(MessageCreate, data)


def interaction_create(data: Any) -> Checked:
    """An INTERACTION_CREATE dispatch's data (an application command, or a click on a button)."""
    if isinstance(data, dict) and data.get("type") == 3:
        return _checked(ComponentInteraction, data)
    return _checked(InteractionCreate, data)


def interaction_key(data: Any) -> dict[str, Any] | None:
    """Of an interaction that did not validate, enough to answer it (None: not even that)."""
    checked = _checked(InteractionKey, data)
    if checked.payload is None or checked.payload["type"] not in (2, 3):
        return None
    return {
        **checked.payload,
        "version": 1,
        "attachment_size_limit": DEFAULT_UPLOAD_LIMIT,
    }
