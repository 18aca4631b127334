"""Clicks on the bot's buttons: INTERACTION_CREATE of a message component (type 3, a button), validated into
typed values before discord.py reads it, like commands are (bots/discord/payloads.py). Only what discord.py
needs to build the interaction, its message and the message's buttons (to find the clicked one) survives."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from bots.discord.payloads import (
    DEFAULT_UPLOAD_LIMIT,
    Checked,
    InteractionChannel,
    InteractionKey,
    InteractionMember,
    MessageCreate,
    Model,
    Permissions,
    Short,
    Small,
    Snowflake,
    User,
    _checked,
)

CustomId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9:_.-]{1,100}$")]


class Button(Model):
    type: Literal[2]
    style: Annotated[int, Field(ge=1, le=6)] = 1
    label: Annotated[str, StringConstraints(max_length=80)] | None = None
    custom_id: CustomId | None = None
    disabled: bool = False


class ActionRow(Model):
    type: Literal[1]
    components: list[Button] = Field(default_factory=list, max_length=5)


class ComponentMessage(MessageCreate):
    components: list[ActionRow] = Field(default_factory=list, max_length=5)


class ComponentData(Model):
    custom_id: CustomId
    component_type: Literal[2]


class ComponentInteraction(InteractionKey):
    version: Small = 1
    data: ComponentData
    message: ComponentMessage
    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    channel: InteractionChannel
    member: InteractionMember | None = None
    user: User | None = None
    app_permissions: Permissions | None = None
    locale: Short | None = None
    guild_locale: Short | None = None
    attachment_size_limit: Annotated[int, Field(ge=0)] = DEFAULT_UPLOAD_LIMIT
    context: Annotated[int, Field(ge=0, le=2)] | None = None

    @model_validator(mode="after")
    def _someone(self) -> ComponentInteraction:
        if self.type != 3:
            raise ValueError("not a message component")
        if self.guild_id is not None and self.member is None:
            raise ValueError("a click in a server comes from a member")
        if self.guild_id is None and self.user is None:
            raise ValueError("a click outside a server comes from a user")
        return self


def component_interaction(data: Any) -> Checked:
    """An INTERACTION_CREATE dispatch's data that is a click on a button."""
    return _checked(ComponentInteraction, data)
