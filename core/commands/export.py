"""`/ai export`: the conversation `/ai model` would apply to, as a Markdown file of its visible turns, for
someone who may see it (whoever took part in it, or an admin). Adapters send the file to the caller only
(Slack: their DM with the bot; Discord: an ephemeral reply)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from core.admin.export import MAX_TRANSCRIPT_CHARS, ConversationExports, Transcript
from core.commands.results import Code, Reply, line, say
from core.domain.clock import Clock
from core.domain.errors import NotAuthorized
from core.domain.types import Attachment, ChatUser, ConversationKey

Record = Callable[[ChatUser, str, str | None, dict[str, Any]], Awaitable[None]]


class ExportCommand:
    """``record`` audits an admin's export of a conversation they took no part in."""

    def __init__(
        self, exports: ConversationExports, *, record: Record, default_model: str, clock: Clock
    ) -> None:
        self._exports = exports
        self._record = record
        self._default_model = default_model
        self._clock = clock

    async def run(self, user: ChatUser, key: ConversationKey, *, admin: bool) -> Reply:
        transcript = await self._exports.transcript(key)
        if transcript is None or not transcript.turns:
            return say("There is no conversation here to export yet.")
        if user.user_id not in transcript.participants:
            if not admin:
                raise NotAuthorized(
                    "Only people who took part in this conversation, or an admin, can export it."
                )
            await self._record(user, "export", str(key), {"messages": len(transcript.turns)})
        name = f"conversation-{_slug(key)}.md"
        markdown = render_markdown(transcript, self._default_model, self._clock(), user)
        file = Attachment(name, "text/markdown", markdown.encode("utf-8"))
        count = len(transcript.turns)
        more = f" ({transcript.left_out} later messages did not fit)" if transcript.left_out else ""
        return Reply(
            (line(f"Here is this conversation, {count} messages{more}: ", Code(name), "."),), (file,)
        )


def render_markdown(transcript: Transcript, default_model: str, now: datetime, by: ChatUser) -> str:
    key = transcript.key
    lines = [
        "# Conversation export",
        "",
        f"- Where: {key.platform}, workspace `{key.workspace_id}`, channel `{key.channel_id}`, "
        f"thread `{key.thread_id}`",
        f"- Model: `{transcript.model or default_model}`",
        f"- Started: {_when(transcript.started_at)}"
        + (f" by `{transcript.started_by}`" if transcript.started_by else ""),
        f"- Exported: {_when(now)} by `{by.user_id}`; {len(transcript.turns)} messages "
        "(hidden and failed messages are left out)",
        "",
    ]
    for turn in transcript.turns:
        if turn.role == "user":
            who = f"**`{turn.user_id}`**" if turn.user_id else "**someone**"
        else:
            who = "**Assistant**" + (f" (`{turn.model}`)" if turn.model else "")
        lines += ["---", "", f"{who} · {_when(turn.at)}", "", turn.text, ""]
    if transcript.left_out:
        lines += [
            "---",
            "",
            f"_The export stops here: it holds at most {MAX_TRANSCRIPT_CHARS:,} characters; "
            f"{transcript.left_out} later messages are not included._",
            "",
        ]
    return "\n".join(lines)


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _slug(key: ConversationKey) -> str:
    raw = f"{key.channel_id}-{key.thread_id}" if key.thread_id else key.channel_id
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw)[:80] or "conversation"
