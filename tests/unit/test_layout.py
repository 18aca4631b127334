"""The architecture's import rules (ARCHITECTURE.md), checked on the source: the core stays platform-neutral
and the adapters never reach back into the CLI."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAT_SDKS = ("slack_bolt", "slack_sdk", "discord")


def imported_modules(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, at any depth (imports inside functions too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources(package)
        for module in imported_modules(path)
        if any(module == name or module.startswith(name + ".") for name in forbidden)
    ]


def test_the_core_imports_no_adapter_and_no_chat_sdk() -> None:
    assert sources("core"), "the core's sources were not found"
    assert violations("core", ("bots", *CHAT_SDKS)) == []


def test_no_adapter_imports_the_command_line() -> None:
    assert violations("bots", ("bots.__main__",)) == []


def test_only_the_command_line_imports_the_composition_root() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for path in sources("bots")
        if any(module == "bots.bootstrap" for module in imported_modules(path))
    }
    assert importers == {"bots/__main__.py"}


def test_the_checks_see_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def late():\n    from slack_sdk.web import WebClient\n    import discord.ext\n")
    assert list(imported_modules(sample)) == ["slack_sdk.web", "discord.ext"]
