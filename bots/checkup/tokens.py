"""`threadwise doctor`: tiktoken's tables for the configured model, so token counts are exact."""

from __future__ import annotations

import os

from bots.checkup.findings import Finding, ok, wrong
from core.llm.tokens import ESTIMATE, TokenCounter

LOAD_TIMEOUT = 15.0


async def token_tables(model: str) -> list[Finding]:
    counter = TokenCounter()
    name = counter.encoding_name(model)
    loaded = await counter.preload(model, limit_seconds=LOAD_TIMEOUT)
    where = os.environ.get("TIKTOKEN_CACHE_DIR") or "tiktoken's default cache"
    if loaded == ESTIMATE:
        return [
            wrong(
                "token tables",
                f"tiktoken's {name} table for THREADWISE_MODEL={model} is not in {where} and could not be "
                "downloaded (counts fall back to estimates): set TIKTOKEN_CACHE_DIR to a folder holding "
                "tiktoken's cache files (the image has them), or allow downloads from "
                "openaipublic.blob.core.windows.net",
            )
        ]
    return [ok("token tables", f"{loaded} loaded ({where})")]
