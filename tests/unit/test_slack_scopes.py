"""The scopes `threadwise doctor` expects of an installed Slack app are exactly manifest.yml's."""

from __future__ import annotations

from pathlib import Path

import yaml

from bots.slack.scopes import BOT_SCOPES
from tests.fakes.slack_api import MANIFEST_SCOPES

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def test_the_scopes_doctor_checks_are_those_of_the_manifest() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    scopes = manifest["oauth_config"]["scopes"]["bot"]

    assert sorted(BOT_SCOPES) == sorted(scopes)
    assert sorted(MANIFEST_SCOPES) == sorted(scopes)  # the Slack fake grants what the manifest asks
