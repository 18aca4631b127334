"""Several model providers behind one ModelClient: each model goes to the endpoint THREADWISE_PROVIDERS names
for its prefix (one ``LLMClient`` per endpoint), other models to the default one (OPENAI_BASE_URL). Moderation
and images use the default endpoint (``sdk``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openai import AsyncOpenAI

from core.domain.ports import OnText
from core.llm.client import LLMClient
from core.llm.provider_config import ProviderConfig, provider_for
from core.llm.types import Completion


class ProviderRouter:
    """A ModelClient that picks the client of a model's provider on every call."""

    def __init__(
        self, default: LLMClient, providers: Sequence[tuple[ProviderConfig, LLMClient]] = ()
    ) -> None:
        self._default = default
        self._configs = tuple(config for config, _ in providers)
        self._clients = {config.prefix: client for config, client in providers}

    def client_for(self, model: str) -> LLMClient:
        provider = provider_for(model, self._configs)
        return self._clients[provider.prefix] if provider is not None else self._default

    @property
    def default(self) -> LLMClient:
        return self._default

    @property
    def sdk(self) -> AsyncOpenAI:
        """The default endpoint's SDK client (moderation, images)."""
        return self._default.sdk

    async def close(self) -> None:
        for client in (*self._clients.values(), self._default):
            await client.close()

    async def stream(
        self,
        *,
        model: str,
        messages: Sequence[dict[str, Any]],
        max_output_tokens: int,
        on_text: OnText | None = None,
        tools: Sequence[dict[str, Any]] = (),
        tool_choice: str | None = None,
        deadline: float | None = None,
    ) -> Completion:
        return await self.client_for(model).stream(
            model=model,
            messages=messages,
            max_output_tokens=max_output_tokens,
            on_text=on_text,
            tools=tools,
            tool_choice=tool_choice,
            deadline=deadline,
        )
