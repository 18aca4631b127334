"""compose.yaml, read as `docker compose` would (CI has no Docker daemon): PostgreSQL, Redis, two replicas
of the image in Slack HTTP mode that report ready on /readyz, and nginx in front of exactly those replicas;
the replicas' environment is one the service's settings accept, pointing at the shared services."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from core.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def replicas() -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose()["services"].items() if service.get("build") == "."}


def interpolated(value: str) -> str:
    """``${VAR:-default}`` as compose fills it with nothing set."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_postgres_redis_and_two_replicas_of_the_image() -> None:
    services = compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert len(replicas()) == 2
    for service in replicas().values():
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
        assert "/readyz" in " ".join(service["healthcheck"]["test"])


def test_the_replicas_settings_point_at_the_shared_services_in_slack_http_mode(monkeypatch: Any) -> None:
    services = compose()["services"]
    for service in replicas().values():
        environment = {key: interpolated(str(value)) for key, value in service["environment"].items()}
        for key, value in {
            **environment,
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
        }.items():
            monkeypatch.setenv(key, value)
        settings = load_settings(None)
        database = settings.service.database_url
        assert database.startswith("postgresql+asyncpg://threadwise:") and "@postgres:5432/" in database
        assert settings.service.redis_url == "redis://redis:6379/0"
        assert settings.slack.app_token is None  # HTTP mode: events come through the load balancer
        assert settings.service.port == 3000
        assert "postgres" in services and "redis" in services


def test_nginx_balances_over_exactly_the_replicas() -> None:
    nginx = compose()["services"]["nginx"]
    [mount] = nginx["volumes"]
    source = mount.split(":")[0]
    config = (REPO / source).read_text(encoding="utf-8")
    upstream = re.findall(r"^\s*server\s+([\w-]+):(\d+)", config, re.M)
    assert sorted(upstream) == sorted((name, "3000") for name in replicas())
    assert "location = /slack/events" in config
    assert set(nginx["depends_on"]) == set(replicas())
