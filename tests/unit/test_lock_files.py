"""The lock files (made by .ci/lock) pin every dependency pyproject.toml names, with ``==``, and agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)(\s*;\s*(?P<marker>.+))?$")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found, requirement
    return normalized(found.group(0))


def pins(path: Path) -> dict[str, set[str]]:
    """name -> versions pinned (several only under different environment markers); fails on anything else."""
    pinned: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        pinned.setdefault(normalized(match.group("name")), set()).add(match.group("version"))
    return pinned


def project() -> dict[str, list[str]]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {"": data["dependencies"], **data["optional-dependencies"]}


@pytest.mark.parametrize(
    ("lock", "groups"),
    [
        ("requirements.lock", ("", "postgres", "redis")),
        ("requirements-dev.lock", ("", "postgres", "redis", "dev")),
    ],
)
def test_the_lock_pins_every_dependency_of_pyproject(lock: str, groups: tuple[str, ...]) -> None:
    pinned = pins(REPO / lock)
    declared = {requirement_name(req) for group in groups for req in project()[group]}

    assert sorted(declared - set(pinned)) == [], f"{lock} is stale: run .ci/lock"


def test_the_image_and_ci_install_the_same_versions() -> None:
    runtime, dev = pins(REPO / "requirements.lock"), pins(REPO / "requirements-dev.lock")

    assert {name: dev[name] for name in runtime} == runtime
