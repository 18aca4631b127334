"""The HTTP side of `threadwise serve`: /healthz (liveness), /readyz (readiness: bots/readiness.py), /metrics
and the routes adapters add (/slack/events)."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bots.readiness import Readiness

log = logging.getLogger(__name__)


class HttpServer:
    """An aiohttp application on ``port``; healthy once ``ready`` is set (DB migrated, adapters up), ready to
    take traffic while every part in ``readiness`` works and the process is not draining."""

    def __init__(self, *, host: str, port: int, registry: CollectorRegistry) -> None:
        self.host = host
        self.port = port
        self.app = web.Application()
        self.ready = False
        self.readiness = Readiness()
        self._registry = registry
        self._runner: web.AppRunner | None = None
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)

    async def _healthz(self, _request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "starting", "failing": [], "parts": {}}, status=503)
        report = await self.readiness.report()
        return web.json_response(report.body(), status=200 if report.ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port (tests): report the one the OS chose
            self.port = int(self._runner.addresses[0][1])
        log.info("HTTP listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
