"""A tool is an async function with a pydantic argument model; its name, description and strict JSON schema
derive from them through the OpenAI SDK's ``pydantic_function_tool``."""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from core.domain.types import Attachment, IncomingMessage

_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who asked: tools act for this user in this conversation, never with more rights than the user has."""

    message: IncomingMessage
    is_admin: bool
    conversation_id: int | None = None


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a tool returns: text for the model, and files for the user (e.g. a generated image)."""

    text: str
    attachments: tuple[Attachment, ...] = ()


class ToolError(Exception):
    """A tool's own failure with a message meant for the model (e.g. "unknown time zone")."""


ToolFunction = Callable[[Any, ToolContext], Awaitable[ToolOutput | str]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel] | None  # None: the schema is given as-is (MCP tools)
    run: ToolFunction
    timeout: float = 15.0
    admin_only: bool = False
    enabled_by_default: bool = True
    schema: Mapping[str, Any] | None = None  # JSON schema of the arguments when ``arguments`` is None
    source: str = "builtin"  # builtin | mcp:<server>

    def definition(self) -> dict[str, Any]:
        """The Chat Completions ``tools`` entry."""
        if self.arguments is not None:
            import openai  # the SDK loads with the model client; commands that only name tools never need it

            return dict(
                openai.pydantic_function_tool(self.arguments, name=self.name, description=self.description)
            )
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.schema or {"type": "object", "properties": {}}),
            },
        }


@dataclass
class ToolRegistry:
    tools: dict[str, Tool] = field(default_factory=dict)

    def add(self, tool: Tool) -> None:
        if not _TOOL_NAME.fullmatch(tool.name):
            raise ValueError(f"tool name {tool.name!r} must match ^[a-zA-Z0-9_-]{{1,64}}$")
        if tool.name in self.tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self.tools[tool.name] = tool

    def extend(self, tools: Iterable[Tool]) -> None:
        for tool in tools:
            self.add(tool)

    def apply_policy(self, *, builtin_on: Collection[str], admin_only: Iterable[str]) -> None:
        """The operator's tool policy: which built-in tools are on by default (MCP tools are: their servers
        were configured on purpose), and which tools only admins may use (``server__*`` patterns too)."""
        patterns = tuple(admin_only)
        for name, tool in list(self.tools.items()):
            builtin = tool.source == "builtin"
            self.tools[name] = dataclasses.replace(
                tool,
                enabled_by_default=name in builtin_on if builtin else tool.enabled_by_default,
                admin_only=any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns),
            )

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def names(self) -> list[str]:
        return sorted(self.tools)
