"""`/ai-admin prompt …`: the persona (system-prompt addition, model, tools) of a channel or workspace."""

from __future__ import annotations

from core.admin.personas import WORKSPACE, Personas, Place, StoredPersona, place_name
from core.admin.service import AdminService
from core.commands.echo import echoed
from core.commands.parsing import channel_of, tool_names
from core.commands.results import Reply, lines, say
from core.commands.tenancy import AdminCall, within
from core.domain.errors import BadInput

PROMPT_USAGE = (
    "Usage: `prompt show [here|#channel|workspace]`, "
    "`prompt set <here|#channel|workspace> [--model M] [--tools a,b|none] <text>`, "
    "`prompt clear <here|#channel|workspace>`."
)


class PersonaCommands:
    def __init__(self, admin: AdminService, personas: Personas | None) -> None:
        self._admin = admin
        self._personas = personas

    async def run(self, call: AdminCall, args: str) -> Reply:
        """``args`` is the raw text after `prompt`: a persona is free text (quotes and apostrophes kept)."""
        if self._personas is None:
            raise BadInput("Personas are not available here.")
        action, rest = _head(args)
        action = action.lower() or "show"
        target, rest = _head(rest)
        if action not in ("show", "set", "clear") or (action != "show" and not target):
            raise BadInput(PROMPT_USAGE)
        place = _place(target or "here", call)
        await within(self._admin, call, place_name(place), f"prompt.{action}")
        if action == "show":
            return _shown(place, await self._personas.show(call.user, place))
        if action == "clear":
            removed = await self._personas.clear(call.user, place)
            return say(
                f"Persona of {_label(place)} removed." if removed else f"{_label(place)} had no persona."
            )
        model, tools, text = _options(rest)
        persona = await self._personas.set(call.user, place, text, model=model, tools=tools)
        extras = []
        if persona.model:
            extras.append(f"model {persona.model}")
        if persona.tools is not None:
            extras.append(f"tools {', '.join(persona.tools) or 'none'}")
        suffix = f" ({'; '.join(extras)})" if extras else ""
        return say(f"Persona of {_label(place)} set{suffix}. New turns there use it.")


def _head(text: str) -> tuple[str, str]:
    head, _, rest = text.strip().partition(" ")
    return head, rest.strip()


def _place(token: str, call: AdminCall) -> Place:
    if token.lower() == "workspace":
        return (call.key.platform, call.key.workspace_id, WORKSPACE)
    return channel_of(token, call.key)


def _options(text: str) -> tuple[str | None, tuple[str, ...] | None, str]:
    """Leading ``--model M`` and ``--tools a,b`` before the persona's text."""
    model: str | None = None
    tools: tuple[str, ...] | None = None
    while text.startswith("--"):
        flag, rest = _head(text)
        value, text = _head(rest)
        if not value:
            raise BadInput(PROMPT_USAGE)
        if flag == "--model":
            model = value
        elif flag == "--tools":
            tools = tuple(tool_names([value]))
        else:
            raise BadInput(f"Unknown option `{echoed(flag)}`. {PROMPT_USAGE}")
    return model, tools, text


def _label(place: Place) -> str:
    return f"workspace {place_name(place)}" if place[2] == WORKSPACE else f"channel {place_name(place)}"


def _shown(place: Place, stored: StoredPersona | None) -> Reply:
    if stored is None:
        return say(f"{_label(place)} has no persona: the system prompt alone applies.")
    persona = stored.persona
    shown = [f"Persona of {_label(place)} (set by {stored.set_by}):", persona.prompt]
    if persona.model:
        shown.append(f"Default model: {persona.model}")
    if persona.tools is not None:
        shown.append(f"Tools: {', '.join(persona.tools) or 'none'}")
    return Reply(lines("\n".join(shown)))
