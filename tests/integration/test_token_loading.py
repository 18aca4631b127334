"""A conversation whose model needs another tiktoken encoding: its first load (a download when the tables are
not cached) happens off the event loop, so a slow download delays that turn only, never the loop, and the
counts stay conservative until the tables are there. Runs in a fresh interpreter, since tiktoken keeps loaded
encodings for the life of a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """\
    import asyncio, json, socket, sys, threading, time
    from core.db import migrate
    from core.db.session import Database
    from core.llm.tokens import TokenCounter
    from tests.fakes.openai_api import FakeOpenAI, Reply
    from tests.support import RecordingReplier, incoming, make_llm, make_service

    def slow_proxy(server):  # accepts the download's connection and says nothing for 4 s
        while True:
            connection, _ = server.accept()
            threading.Timer(4.0, connection.close).start()

    async def main(folder, port):
        database = Database.from_url(f"sqlite+aiosqlite:///{folder}/t.db")
        await migrate.upgrade(database.engine)
        longest = 0.0

        async def ticker():
            nonlocal longest
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                longest = max(longest, time.perf_counter() - before)

        async with FakeOpenAI(api_key="test-key") as fake:
            fake.script(Reply(text="hello there"))
            counter = TokenCounter()
            service = make_service(database, make_llm(fake.base_url), counter=counter, model="gpt-4")
            ticking = asyncio.create_task(ticker())
            replier = RecordingReplier()
            started = time.perf_counter()
            await service.handle(incoming("hello", "e1"), replier)
            seconds = time.perf_counter() - started
            await asyncio.sleep(0.05)
            ticking.cancel()
            prompt = fake.chat_requests()[0]
        await database.close()
        print(json.dumps({"longest": longest, "seconds": seconds, "finished": replier.finished,
                          "encoding": counter.encoding_for("gpt-4"), "model": prompt["model"]}))

    server = socket.create_server(("127.0.0.1", int(sys.argv[2])))
    threading.Thread(target=slow_proxy, args=(server,), daemon=True).start()
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def test_a_first_load_of_another_encoding_does_not_hold_the_event_loop(tmp_path: Path) -> None:
    empty_cache = tmp_path / "tiktoken"
    empty_cache.mkdir()
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key.upper() not in ("NO_PROXY",)}
    env.pop("TEST_DATABASE_URL", None)
    env["TIKTOKEN_CACHE_DIR"] = str(empty_cache)
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = f"http://127.0.0.1:{port}"
    env["NO_PROXY"] = "127.0.0.1,localhost"  # the OpenAI fake is local; only the tables' download is slow
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(port)],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["finished"] and "hello there" in seen["finished"][-1]
    assert seen["seconds"] > 3.0  # the turn did wait for the (slow, failed) download...
    assert seen["longest"] < 1.0, seen  # ...but the loop never did: 4 s before, milliseconds now
    assert seen["encoding"] == "estimate"  # no tables: counts stay conservative


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
