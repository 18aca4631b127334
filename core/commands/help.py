"""What `/ai help` and `/ai-admin help` say."""

from __future__ import annotations

from core.commands.results import Block, Bullets, Code, Emphasis, Heading, Span, Text, line
from core.money.report_terms import PERIOD_HELP

USER_HELP: tuple[Block, ...] = (
    line(Emphasis("Threadwise"), ": ask me anything; in a thread I remember the conversation."),
    Bullets(
        (
            (Code("/ai ask <prompt>"), Text(": a question, answered in a thread")),
            (Code("/ai chat <prompt>"), Text(": start a conversation thread")),
            (Code("/ai reset"), Text(": forget this conversation's history")),
            (Code("/ai usage"), Text(": what you have spent today and this month, and your limits")),
            (Code("/ai model [name]"), Text(": show or change the model of this conversation")),
            (Code("/ai image <prompt>"), Text(": generate an image")),
            (Code("/ai export"), Text(": this conversation as a Markdown file, sent only to you")),
            (Code("/ai forget"), Text(": erase your messages and personal data (asks for confirmation)")),
        )
    ),
)

_QUOTA_SET: tuple[Span, ...] = (
    Code("quota set <scope> <subject> <day|month> <$5 | 200k tokens | unlimited>"),
    Text(" (subject: @user, #channel, "),
    Code("here"),
    Text(" for this channel or workspace, "),
    Code("*"),
    Text(" for global)"),
)

ADMIN_HELP: tuple[Block, ...] = (
    Heading("Admin commands"),
    Bullets(
        (
            (Code("quota show [user|channel|workspace|global]"),),
            _QUOTA_SET,
            (Code("quota clear <scope> <subject> <day|month>"),),
            (
                Code("report [period] [by user|channel|workspace|model|day|feedback]"),
                Text(f"; period: {PERIOD_HELP}"),
            ),
            (
                Code("ban <@user> [30m|12h|7d] [reason]"),
                Text(", "),
                Code("ban list"),
                Text(", "),
                Code("unban <@user>"),
            ),
            (Code("moderation [count] [user <@user>] [action allow|flag|block|redact|unavailable]"),),
            (Code("moderation policy <#channel|here> [show|clear|flag 0.3 block 0.6|violence block 0.5]"),),
            (
                Code("tools [show] [#channel]"),
                Text(", "),
                Code("tools set <#channel|here> calculator,current_time|none"),
                Text(", "),
                Code("tools clear <#channel|here>"),
            ),
            (
                Code("prompt show [here|#channel|workspace]"),
                Text(", "),
                Code("prompt set <here|#channel|workspace> [--model M] [--tools a,b|none] <text>"),
                Text(", "),
                Code("prompt clear <here|#channel|workspace>"),
                Text(": the channel's (or workspace's) persona, added to the system prompt"),
            ),
        )
    ),
)
