"""Terminal adapter: `threadwise chat`. One turn per input line; answers stream to stdout as they arrive."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from core.domain.errors import BotError
from core.domain.types import Attachment, ChatUser, ConversationKey, IncomingMessage
from core.turn.service import ConversationService, TurnOutcome

PLATFORM = "console"


class ConsoleReplier:
    """Streams the reply's new text to ``out``; errors and progress notes go to ``err``."""

    def __init__(self, out: TextIO, err: TextIO, *, files_dir: Path) -> None:
        self._out = out
        self._err = err
        self._files_dir = files_dir
        self._shown = ""
        self._interactive = out.isatty()

    async def start(self) -> None:
        self._shown = ""
        if self._interactive:
            self._out.write("ai> ")
            self._out.flush()

    async def update(self, text: str) -> None:
        if text.startswith(self._shown):
            self._out.write(text[len(self._shown) :])
        else:  # a new tool round restarted the text: begin a fresh line
            self._out.write("\n" + text)
        self._shown = text
        self._out.flush()

    async def status(self, text: str) -> None:
        self._err.write(f"[{text}]\n")
        self._err.flush()

    async def finish(self, text: str) -> None:
        await self.update(text)
        self._out.write("\n")
        self._out.flush()

    async def attach(self, attachment: Attachment) -> None:
        path = self._files_dir / attachment.name
        path.write_bytes(attachment.data)
        self._err.write(f"[saved {attachment.mime} to {path}]\n")
        self._err.flush()

    def track(self, on_posted: Callable[[dict[str, str]], None]) -> None:
        """Nothing to find again: a terminal's reply is gone with the process."""

    def answering(self, answer_id: int) -> None:
        """A terminal shows no buttons."""

    async def error(self, error: BotError) -> None:
        if self._shown:
            self._out.write("\n")
            self._out.flush()
        self._err.write(f"error: {error.user_message}\n")
        self._err.flush()


class ConsoleResolver:
    """Crash recovery for `threadwise chat`: the terminal of a killed chat is gone, so an interrupted turn
    is only marked resolved (its conversation's next turn need not wait for it)."""

    async def resolve(self, key: ConversationKey, where: dict[str, str] | None, text: str) -> None:
        return None


class ConsoleChat:
    """Reads lines from ``stdin`` (a terminal or a pipe) and runs each as a turn of one conversation."""

    def __init__(
        self,
        service: ConversationService,
        *,
        conversation: str,
        model: str | None,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self._service = service
        self._model = model
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self._stderr = stderr or sys.stderr
        self.key = ConversationKey(PLATFORM, "local", "console", conversation)
        self._user = ChatUser(PLATFORM, "local", "you", is_admin=True)

    async def run(self) -> int:
        """Returns the process exit code: 0 when every turn was answered, 1 otherwise."""
        interactive = self._stdin.isatty()
        if interactive:
            self._stderr.write(f"Threadwise chat, conversation {self.key.thread_id!r}. Ctrl-D quits.\n")
        replier = ConsoleReplier(self._stdout, self._stderr, files_dir=Path.cwd())
        failures = 0
        while True:
            if interactive:
                self._stdout.write("you> ")
                self._stdout.flush()
            line = await asyncio.to_thread(self._stdin.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            message = IncomingMessage(
                key=self.key,
                user=self._user,
                text=text,
                event_id=f"console:{uuid.uuid4()}",
                received_at=datetime.now(UTC),
            )
            outcome = await self._service.handle(message, replier, model=self._model)
            failures += outcome is TurnOutcome.FAILED
        return 1 if failures else 0
