"""/healthz and /metrics over real HTTP."""

from __future__ import annotations

import aiohttp

from bots.http import HttpServer
from core.db.session import Database
from tests.fakes.openai_api import FakeOpenAI
from tests.support import RecordingReplier, incoming, make_llm, make_service


async def test_healthz_turns_ready_and_metrics_count_turns(
    database: Database, fake_openai: FakeOpenAI
) -> None:
    llm = make_llm(fake_openai.base_url)
    service = make_service(database, llm)
    async with (
        HttpServer(host="127.0.0.1", port=0, registry=service.metrics.registry) as http,
        aiohttp.ClientSession() as client,
    ):
        base = f"http://127.0.0.1:{http.port}"
        async with client.get(f"{base}/healthz") as response:
            assert response.status == 503
        http.ready = True
        async with client.get(f"{base}/healthz") as response:
            assert response.status == 200 and (await response.json()) == {"status": "ok"}
        await service.handle(incoming("hi", "e1"), RecordingReplier())
        await service.handle(incoming("hi", "e1"), RecordingReplier())
        async with client.get(f"{base}/metrics") as response:
            body = await response.text()
        assert response.status == 200 and response.content_type == "text/plain"
        assert 'threadwise_turns_total{outcome="answered",platform="console",reason=""} 1.0' in body
        assert 'threadwise_turns_total{outcome="duplicate",platform="console",reason=""} 1.0' in body
    await llm.close()
