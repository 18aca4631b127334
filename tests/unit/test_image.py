"""The Dockerfile, read as `docker build` would (CI builds the image only where it has a Docker daemon):
everything it copies exists, it installs the lock file (exact pins) and then the project without
dependencies, fetches tiktoken's tables at build time, and runs as a non-root user with a HEALTHCHECK on
/readyz."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.unit.test_lock_files import pins

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, instruction: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == instruction]


def stages() -> list[Stage]:
    """The Dockerfile's stages, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text(encoding="utf-8"))
    found: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            found.append(Stage(arguments.split(" AS ")[-1].strip() if " AS " in arguments else arguments))
        elif found:
            found[-1].instructions.append((instruction, arguments.strip()))
    return found


def test_every_file_the_dockerfile_copies_exists() -> None:
    copied = []
    for stage in stages():
        for arguments in stage.all("COPY"):
            words = shlex.split(arguments)
            if any(word.startswith("--from") for word in words):
                continue
            sources = [word for word in words[:-1] if not word.startswith("--")]
            copied += sources
    assert "requirements.lock" in copied and "core" in copied and "migrations" in copied
    assert [source for source in copied if not (REPO / source).exists()] == []


def test_the_build_installs_the_lock_then_the_project_without_dependencies() -> None:
    build = stages()[0]
    runs = build.all("RUN")
    installs = [run for run in runs if "pip install" in run]
    assert installs[0] == "pip install -r requirements.lock"
    assert any(run.startswith("pip install --no-deps .") for run in installs[1:])
    assert all("-r requirements.lock" in run or "--no-deps" in run for run in installs), installs
    locked = pins(REPO / "requirements.lock")  # fails on any line that is not name==version
    assert {"openai", "slack-bolt", "discord-py", "asyncpg", "redis", "tiktoken"} <= set(locked)


def test_token_tables_are_fetched_at_build_time_into_the_images_cache() -> None:
    build, runtime = stages()[0], stages()[-1]
    fetch = next(run for run in build.all("RUN") if "load_encoding" in run)  # the tables and parsed ranks
    assert "o200k_base" in fetch and "cl100k_base" in fetch and ".ranks" in fetch
    cache = re.search(r"TIKTOKEN_CACHE_DIR=(\S+)", " ".join(build.all("ENV")))
    assert cache is not None
    assert f"--from={build.name} {cache.group(1)} {cache.group(1)}" in runtime.all("COPY")
    assert f"TIKTOKEN_CACHE_DIR={cache.group(1)}" in " ".join(runtime.all("ENV"))


def test_the_image_runs_as_a_user_and_checks_readiness() -> None:
    all_stages = stages()
    runtime = all_stages[-1]
    assert len(all_stages) >= 2  # multi-stage: no compilers or build caches in what runs
    [user] = runtime.all("USER")
    assert user not in ("root", "0")
    [healthcheck] = runtime.all("HEALTHCHECK")
    assert "/readyz" in healthcheck
    assert runtime.all("CMD") == ['["threadwise", "serve"]']
