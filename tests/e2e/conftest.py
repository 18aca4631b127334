"""Runs the real `threadwise` command in a subprocess, with its own temp database and working directory."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.openai_api import FakeOpenAI


@dataclass
class Run:
    code: int
    out: str
    err: str


def command() -> list[str]:
    script = Path(sys.executable).parent / "threadwise"
    found = str(script) if script.exists() else shutil.which("threadwise")
    return [found] if found else [sys.executable, "-m", "bots"]


def token_tables_env() -> dict[str, str]:
    """TIKTOKEN_CACHE_DIR for a child process when the tests have one (else tiktoken's default cache)."""
    found = os.environ.get("TIKTOKEN_CACHE_DIR")
    return {"TIKTOKEN_CACHE_DIR": found} if found else {}


@pytest.fixture
def run_cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    base_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        **token_tables_env(),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}",
    }

    async def run(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Run:
        process = await asyncio.create_subprocess_exec(
            *command(),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={**base_env, **(env or {})},
        )
        out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    return run


def openai_env(fake: FakeOpenAI) -> dict[str, str]:
    return {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake.base_url}
