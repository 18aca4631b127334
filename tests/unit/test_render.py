"""The renderers of command replies (core/commands/results): Slack mrkdwn, Discord markdown, plain text."""

from __future__ import annotations

from bots import plain
from bots.discord import render as discord
from bots.slack import render as slack
from bots.slack.mrkdwn import to_mrkdwn
from core.commands.help import ADMIN_HELP, USER_HELP
from core.commands.results import (
    Bullets,
    Code,
    Emphasis,
    Heading,
    Preformatted,
    Reply,
    Text,
    codes,
    line,
    lines,
    say,
)
from core.domain.types import Attachment

SAMPLE = Reply(
    (
        line(Emphasis("Moderation log"), " (newest first)"),
        line("Uses ", Code("gpt <4o> & co"), ". Available: ", *codes(["a", "b"]), "."),
        Heading("Budgets & limits"),
        Bullets(((Code("/ai ask <prompt>"), Text(": a question")), (Text("**bold** & <b>"),))),
        Preformatted("group  cost\n<all>  $1 & more"),
    ),
    (Attachment("report.csv", "text/csv", b"a,b"),),
    public=True,
)


def test_slack_escapes_and_uses_mrkdwn() -> None:
    assert slack.render(SAMPLE) == (
        "_Moderation log_ (newest first)\n"
        "Uses `gpt &lt;4o&gt; &amp; co`. Available: `a`, `b`.\n"
        "\n"
        "_Budgets &amp; limits_\n"
        "• `/ai ask &lt;prompt&gt;`: a question\n"
        "• *bold* &amp; &lt;b&gt;\n"
        "```\n"
        "group  cost\n"
        "&lt;all&gt;  $1 &amp; more\n"
        "```"
    )


def test_discord_writes_markdown_as_it_is() -> None:
    assert discord.render(SAMPLE) == (
        "*Moderation log* (newest first)\n"
        "Uses `gpt <4o> & co`. Available: `a`, `b`.\n"
        "\n"
        "*Budgets & limits*\n"
        "• `/ai ask <prompt>`: a question\n"
        "• **bold** & <b>\n"
        "```\n"
        "group  cost\n"
        "<all>  $1 & more\n"
        "```"
    )


def test_plain_text_has_no_markup() -> None:
    assert plain.PLAIN.render(SAMPLE) == (
        "Moderation log (newest first)\n"
        "Uses gpt <4o> & co. Available: a, b.\n"
        "\n"
        "Budgets & limits\n"
        "- /ai ask <prompt>: a question\n"
        "- **bold** & <b>\n"
        "group  cost\n"
        "<all>  $1 & more"
    )
    assert plain.PLAIN.spans(Text("slack:U1 per day: $5.00")) == "slack:U1 per day: $5.00"


def test_a_heading_first_has_no_blank_line_before_it() -> None:
    reply = Reply((Heading("Bans"), *lines("slack:U1 until unbanned\nslack:U2 until unbanned")))
    assert slack.render(reply) == "_Bans_\nslack:U1 until unbanned\nslack:U2 until unbanned"
    assert discord.render(reply) == "*Bans*\nslack:U1 until unbanned\nslack:U2 until unbanned"
    assert plain.PLAIN.render(reply) == "Bans\nslack:U1 until unbanned\nslack:U2 until unbanned"


def test_plain_text_reads_like_typed_markdown_on_each_platform() -> None:
    reply = say("Image for: a **red** fox ~~maybe~~ <http://x.y>")
    assert slack.render(reply) == "Image for: a *red* fox ~maybe~ <http://x.y>"
    assert discord.render(reply) == "Image for: a **red** fox ~~maybe~~ <http://x.y>"
    assert plain.PLAIN.render(reply) == "Image for: a **red** fox ~~maybe~~ <http://x.y>"
    assert not reply.public and reply.attachments == ()


def test_help_as_each_platform_shows_it() -> None:
    user_help = Reply(USER_HELP)
    first, ask = discord.render(user_help).splitlines()[:2]
    assert first == "*Threadwise*: ask me anything; in a thread I remember the conversation."
    assert ask == "• `/ai ask <prompt>`: a question, answered in a thread"
    first, ask = slack.render(user_help).splitlines()[:2]
    assert first == "_Threadwise_: ask me anything; in a thread I remember the conversation."
    assert ask == "• `/ai ask &lt;prompt&gt;`: a question, answered in a thread"
    both = discord.render(Reply(USER_HELP + ADMIN_HELP)).split("\n\n")
    assert len(both) == 2
    assert both[1].startswith("*Admin commands*\n• `quota show [user|channel|workspace|global]`")
    assert (
        "• `quota set <scope> <subject> <day|month> <$5 | 200k tokens | unlimited>` "
        "(subject: @user, #channel, `here` for this channel or workspace, `*` for global)"
    ) in both[1]
    assert slack.render(Reply(ADMIN_HELP)).startswith("_Admin commands_\n• `quota show")


def test_slack_shows_what_the_markdown_of_discord_converts_to() -> None:
    """Before replies were structured, Slack showed ``to_mrkdwn`` of the text Discord shows: still so."""
    for reply in (SAMPLE, Reply(USER_HELP + ADMIN_HELP), Reply(ADMIN_HELP)):
        assert slack.render(reply) == to_mrkdwn(discord.render(reply))
