"""Mentions in `/ai-admin` arguments become the neutral ``@id`` / ``#id`` the core reads, on each platform."""

from __future__ import annotations

import pytest

from bots.discord.mentions import neutral_args as discord
from bots.slack.mentions import neutral_args as slack
from core.commands.parsing import channel_of, scope_subject, user_subject
from core.domain.errors import BadInput
from core.domain.types import ConversationKey

SLACK = ConversationKey("slack", "T1", "C1", "1.2")
DISCORD = ConversationKey("discord", "100", "200", "300")


def test_slack_mentions_become_ids() -> None:
    assert slack("set user <@U0ADA> day $5") == "set user @U0ADA day $5"
    assert slack("set user <@U0ADA|ada> day $5") == "set user @U0ADA day $5"
    assert slack("policy <#C9|random> flag 0.3") == "policy #C9 flag 0.3"
    assert slack("tools set <#C9> none") == "tools set #C9 none"
    assert slack('ban "<@U0ADA|Ada Lovelace>" 2h') == 'ban "@U0ADA" 2h'
    # not a mention of a user or channel, or not a word of its own: left for the core to refuse
    assert slack("<!here> x<@U1> <@U1>x") == "<!here> x<@U1> <@U1>x"
    assert slack("here * slack:U1 U1") == "here * slack:U1 U1"


def test_discord_mentions_become_ids() -> None:
    assert discord("<@42> <@!42> <#555>") == "@42 @42 #555"
    assert discord("<@&7> role") == "<@&7> role"


def test_the_core_reads_ids_in_the_conversations_platform() -> None:
    assert user_subject(slack("<@U0ADA|ada>"), SLACK) == "slack:U0ADA"
    assert user_subject(discord("<@!42>"), DISCORD) == "discord:42"
    assert user_subject("slack:U9", DISCORD) == "slack:U9"
    assert scope_subject("channel", slack("<#C9|random>"), SLACK) == "slack:T1:C9"
    assert scope_subject("channel", discord("<#555>"), DISCORD) == "discord:100:555"
    assert scope_subject("channel", "here", DISCORD) == "discord:100:200"
    assert scope_subject("workspace", "here", SLACK) == "slack:T1"
    assert scope_subject("global", "*", SLACK) == "*"
    assert channel_of("slack:T2:C3", SLACK) == ("slack", "T2", "C3")


def test_a_channel_mention_is_no_user() -> None:
    with pytest.raises(BadInput, match="not a user"):
        user_subject(slack("<#C9|random>"), SLACK)
    with pytest.raises(BadInput, match="not a user"):
        user_subject(discord("<#555>"), DISCORD)
