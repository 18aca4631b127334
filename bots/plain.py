"""Command output (core/commands/results) as plain text for a terminal: no markup at all; list items start
with ``- ``."""

from __future__ import annotations

from bots.markup import Markup

PLAIN = Markup(bullet="- ")
