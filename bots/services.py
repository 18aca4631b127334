"""What a chat adapter gets of the core: the turn, the command vocabulary, the mod log, crash recovery, the
document reader and the answers' buttons."""

from __future__ import annotations

from dataclasses import dataclass

from core.admin.installations import Installations
from core.answers.buttons import AnswerButtons
from core.commands.dispatch import Commands
from core.documents.reader import DocumentReader
from core.guards.modlog import ModLog
from core.tools.approvals import Approvals
from core.turn.recovery import Recovery
from core.turn.service import ConversationService


@dataclass(frozen=True, slots=True)
class ChatServices:
    turns: ConversationService  # runs a turn: handle(message, replier)
    commands: Commands  # `/ai …` and `/ai-admin …`, structured results
    modlog: ModLog  # where an adapter registers its mod-log channel
    recovery: Recovery  # where an adapter registers how it resolves a stopped replica's replies
    documents: DocumentReader | None = None  # attached PDF, Word, … files as text (None: not read)
    installations: Installations | None = None  # where the app is installed (Slack distribution, OAuth)
    approvals: Approvals | None = None  # tool approval: adapters register how they ask, and record clicks
    buttons: AnswerButtons | None = None  # the buttons under answers: feedback, Stop, Retry
