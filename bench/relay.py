"""The floor the Slack benchmarks compare Threadwise with: a minimal relay making the same wire calls as a
Threadwise turn, with the same SDKs, and nothing else (no database, history, budgets or guards).

aiohttp serves ``/healthz`` and ``/slack/events``: verify the signature (slack_sdk's SignatureVerifier), ack,
then slack_sdk ``chat.postMessage`` (the placeholder), an openai streamed chat completion (system prompt + the
message), one ``chat.update`` with the answer. With moderation it also sends the question to
``moderations.create`` before the completion and the answer after it, as Threadwise does.

Run alone: ``PORT=8080 SLACK_SIGNING_SECRET=… SLACK_BOT_TOKEN=… SLACK_API_URL=… OPENAI_API_KEY=…
OPENAI_BASE_URL=… python bench/relay.py [--moderation]`` (until SIGTERM or SIGINT).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

# As Threadwise's defaults have them.
MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = (
    "You are Threadwise, a helpful assistant in a team chat. Answer concisely and use Markdown sparingly."
)
PLACEHOLDER = ":hourglass_flowing_sand: Thinking…"


async def until_signalled() -> None:
    """Until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_relay(
    port: int,
    *,
    moderate: bool,
    until: Callable[[], Awaitable[None]] = until_signalled,
    listening: Callable[[int], None] | None = None,
) -> None:
    """Serve on 127.0.0.1:``port`` (0: any free port, told to ``listening``) until ``until()`` returns."""
    import aiohttp
    from aiohttp import web
    from openai import AsyncOpenAI
    from slack_sdk.signature import SignatureVerifier
    from slack_sdk.web.async_client import AsyncWebClient

    log = logging.getLogger("relay")
    env = os.environ
    mention = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>\s*")
    verifier = SignatureVerifier(env["SLACK_SIGNING_SECRET"])
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as session:
        slack = AsyncWebClient(token=env["SLACK_BOT_TOKEN"], base_url=env["SLACK_API_URL"], session=session)
        llm = AsyncOpenAI(api_key=env["OPENAI_API_KEY"], base_url=env["OPENAI_BASE_URL"])

        async def answer(event: dict[str, Any]) -> None:
            try:
                channel = str(event["channel"])
                thread = str(event.get("thread_ts") or event["ts"])
                text = mention.sub("", str(event.get("text") or "")).strip()
                if moderate:
                    await llm.moderations.create(model="omni-moderation-latest", input=text)
                posted = await slack.chat_postMessage(channel=channel, thread_ts=thread, text=PLACEHOLDER)
                stream = await llm.chat.completions.create(
                    model=MODEL,
                    messages=[
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": text},
                    ],
                    stream=True,
                    stream_options={"include_usage": True},
                    max_completion_tokens=1024,
                )
                parts: list[str] = []
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                reply = "".join(parts)
                if moderate:
                    await llm.moderations.create(model="omni-moderation-latest", input=reply)
                await slack.chat_update(channel=channel, ts=str(posted["ts"]), text=reply)
            except Exception:
                log.exception("relay turn failed")

        async def events(request: web.Request) -> web.Response:
            body = await request.text()
            headers = request.headers
            if not verifier.is_valid(
                body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
            ):
                return web.Response(status=401)
            payload = json.loads(body)
            event = payload.get("event") or {}
            if payload.get("type") == "event_callback" and event.get("type") == "app_mention":
                task = asyncio.create_task(answer(event))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            return web.Response()

        async def healthz(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_post("/slack/events", events)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            if listening is not None:
                listening(int(runner.addresses[0][1]))
            await until()
        finally:
            await runner.cleanup()
            await asyncio.gather(*tasks, return_exceptions=True)
            await llm.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--moderation", action="store_true", help="check the question and the answer too")
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve_relay(int(os.environ.get("PORT", "0")), moderate=args.moderation))
    return 0


if __name__ == "__main__":
    sys.exit(main())
