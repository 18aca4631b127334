"""`/readyz` over real HTTP, as a load balancer or Docker's HEALTHCHECK asks it: 200 while the database
answers, its schema is current and every adapter is connected; otherwise 503 naming each failing part, within
a few seconds even when a dependency does not answer at all; 503 while the process drains."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

from bots.bootstrap import serving
from bots.http import HttpServer
from bots.readiness import CHECK_TIMEOUT
from core.db import migrate
from core.db.session import Database
from core.settings import Settings, load_settings
from tests.conftest import postgres_url, reset_postgres
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack

PATIENCE = aiohttp.ClientTimeout(total=4 * CHECK_TIMEOUT)  # a probe that hangs fails the test


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(timeout=PATIENCE) as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.json()


async def until_readyz(port: int, status: int, within: float = 30.0) -> dict[str, Any]:
    """Asks /readyz until it answers ``status`` (a reconnect takes the SDK's backoff), returns the body."""
    async with asyncio.timeout(within):
        while True:
            seen, body = await readyz(port)
            if seen == status:
                return body
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def http_for(database: Database) -> AsyncIterator[HttpServer]:
    async with HttpServer(host="127.0.0.1", port=0, registry=CollectorRegistry()) as http:
        http.readiness.add_database(database)
        http.ready = True
        yield http


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never says a word (a database host that hangs)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


class TcpProxy:
    """127.0.0.1:<port> forwarded to ``target``; ``cut()`` closes it and every connection (the database
    host is gone)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.cut()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


# ---------------------------------------------------------------------------------------------- the database


async def test_ready_when_the_database_answers_and_its_schema_is_current(database: Database) -> None:
    async with http_for(database) as http:
        status, body = await readyz(http.port)
    assert status == 200
    assert body == {"status": "ready", "failing": [], "parts": {"database": "ok", "migrations": "ok"}}


async def test_migrations_behind_are_named_with_the_fix(database_url: str) -> None:
    database = Database.from_url(database_url)
    await migrate.upgrade(database.engine, "0003")
    try:
        async with http_for(database) as http:
            status, body = await readyz(http.port)
    finally:
        await database.close()
    assert status == 503
    assert body["failing"] == ["migrations"]
    assert body["parts"]["migrations"] == (
        f"the database is at revision 0003, this version needs {migrate.head_revision()}: "
        "run `threadwise migrate`"
    )


async def test_a_database_host_that_refuses_connections_is_named() -> None:
    database = Database.from_url(f"postgresql+asyncpg://threadwise@127.0.0.1:{closed_port()}/threadwise")
    try:
        async with http_for(database) as http:
            status, body = await readyz(http.port)
    finally:
        await database.close()
    assert status == 503
    assert body["failing"] == ["database", "migrations"]
    assert "Connect call failed" in body["parts"]["database"] or "refused" in body["parts"]["database"]


async def test_a_database_that_never_answers_is_named_without_hanging_the_probe() -> None:
    async with silent_server() as port:
        database = Database.from_url(f"postgresql+asyncpg://threadwise@127.0.0.1:{port}/threadwise")
        try:
            async with http_for(database) as http:
                status, body = await readyz(http.port)  # PATIENCE: it must answer, not wait for the host
        finally:
            await database.close()
    assert status == 503
    assert body["failing"] == ["database", "migrations"]
    assert body["parts"]["database"] == f"no answer within {CHECK_TIMEOUT:g} s"


async def test_a_database_that_goes_away_while_serving_is_named() -> None:
    url = postgres_url()
    if url is None:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    await reset_postgres(url)
    real = make_url(url)
    async with TcpProxy(real.host or "127.0.0.1", real.port or 5432) as proxy:
        database = Database.from_url(
            real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        )
        await migrate.upgrade(database.engine)
        try:
            async with http_for(database) as http:
                assert (await readyz(http.port))[0] == 200
                await proxy.cut()
                status, body = await readyz(http.port)
        finally:
            await database.close()
    assert status == 503
    assert body["failing"] == ["database", "migrations"]


async def test_draining_answers_503_whatever_the_parts_say(database: Database) -> None:
    async with http_for(database) as http:
        assert (await readyz(http.port))[0] == 200
        http.readiness.start_draining()
        status, body = await readyz(http.port)
    assert status == 503
    assert body == {"status": "draining", "failing": [], "parts": {"database": "ok", "migrations": "ok"}}


# ---------------------------------------------------------------------------------------------- the adapters


def serve_settings(tmp_path: Path, openai: FakeOpenAI, **groups: dict[str, Any]) -> Settings:
    return load_settings(
        None,
        openai={"api_key": "test-key", "base_url": openai.base_url},
        service={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'threadwise.db'}", "port": 0},
        **groups,
    )


async def test_discord_is_named_while_its_gateway_is_gone(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    async with FakeDiscord() as fake:
        discord = {"bot_token": fake.token, "api_url": fake.api_url, "gateway_url": fake.gateway_url}
        settings = serve_settings(tmp_path, fake_openai, discord=discord)
        async with serving(settings, ["discord"]) as http:
            status, body = await readyz(http.port)
            assert status == 200, body
            assert body["parts"] == {"database": "ok", "migrations": "ok", "discord": "ok"}

            await fake.drop_gateway()
            body = await until_readyz(http.port, 503)
            assert body["failing"] == ["discord"]
            assert body["parts"]["discord"] == "gateway connection lost (reconnecting)"

            fake.restore_gateway()
            await until_readyz(http.port, 200)  # discord.py reconnected (resumed) by itself


async def test_slack_http_mode_is_ready_once_its_token_is_accepted(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake:
        slack = {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "api_url": fake.api_url}
        async with serving(serve_settings(tmp_path, fake_openai, slack=slack), ["slack"]) as http:
            status, body = await readyz(http.port)
            assert not http.readiness.draining
    assert status == 200
    assert body["parts"] == {"database": "ok", "migrations": "ok", "slack": "ok"}
    assert http.readiness.draining  # set as serve stops: not ready while the adapters drain


async def test_slack_socket_mode_is_named_while_its_connection_is_down(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    async with FakeSlack() as fake:
        slack = {"bot_token": BOT_TOKEN, "app_token": APP_TOKEN, "api_url": fake.api_url}
        async with serving(serve_settings(tmp_path, fake_openai, slack=slack), ["slack"]) as http:
            assert (await readyz(http.port))[0] == 200
            await fake.drop_sockets()
            body = await until_readyz(http.port, 503)
            assert body["failing"] == ["slack"]
            assert body["parts"]["slack"] == "the Socket Mode connection is down (reconnecting)"
