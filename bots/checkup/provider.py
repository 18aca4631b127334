"""`threadwise doctor`: the model providers. The default endpoint's key and every configured model it serves
are checked with the provider's model lookup (``GET /v1/models/{id}``), the moderation endpoint with one tiny
request (moderation is free). Each endpoint of THREADWISE_PROVIDERS is checked on its own: reachable, its key
accepted (``GET /models``), and the configured models routed to it listed there."""

from __future__ import annotations

import openai

from bots.checkup.findings import Finding, ok, skipped, wrong
from bots.readiness import describe
from core.llm.client import LLMClient
from core.llm.provider_config import ProviderConfig, provider_for
from core.settings import Settings

LOOKUP_TIMEOUT = 10.0


def configured_models(settings: Settings) -> list[tuple[str, str]]:
    """(variable, model) of every model the service may call, each once, the default model first."""
    tw, limits = settings.threadwise, settings.limits
    named = [("THREADWISE_MODEL", tw.model)]
    if limits.fallback_model:
        named.append(("THREADWISE_FALLBACK_MODEL", limits.fallback_model))
    named += [("THREADWISE_MODELS", model) for model in tw.models]
    if tw.images:
        named.append(("THREADWISE_IMAGE_MODEL", tw.image_model))
    first = {model: variable for variable, model in reversed(named)}  # a model named twice: its first name
    return [(variable, model) for variable, model in named if first[model] == variable]


def _endpoint(settings: Settings) -> str:
    return settings.openai.base_url or "https://api.openai.com/v1"


async def provider(settings: Settings) -> list[Finding]:
    """The key (through the first lookup), each model, and the moderation endpoint."""
    api_key = settings.openai.api_key.get_secret_value() if settings.openai.api_key else None
    if not api_key and not settings.openai.base_url:
        return [
            wrong(
                "openai",
                "OPENAI_API_KEY is not set: create a key at https://platform.openai.com/api-keys, or set "
                "OPENAI_BASE_URL to an OpenAI-compatible endpoint that needs none",
            )
        ]
    llm = LLMClient.create(
        api_key=api_key, base_url=settings.openai.base_url, timeout=LOOKUP_TIMEOUT, max_retries=0
    )
    try:
        return await _lookups(settings, llm.sdk)
    finally:
        await llm.close()


async def _lookups(settings: Settings, sdk: openai.AsyncOpenAI) -> list[Finding]:
    findings: list[Finding] = []
    routed = settings.threadwise.provider_list()
    for variable, model in configured_models(settings):
        if provider_for(model, routed) is not None:
            continue  # served by a THREADWISE_PROVIDERS endpoint: checked there (endpoint_checks)
        try:
            await sdk.models.retrieve(model)
        except openai.AuthenticationError as exc:
            return [
                wrong(
                    "openai",
                    f"OPENAI_API_KEY: {_endpoint(settings)} refused it ({exc.status_code}): set a valid key "
                    "(https://platform.openai.com/api-keys)",
                )
            ]
        except openai.APIConnectionError as exc:
            return [
                wrong(
                    "openai",
                    f"OPENAI_BASE_URL: cannot reach {_endpoint(settings)} "
                    f"({describe(exc.__cause__ or exc)}): check the address, or unset it to use OpenAI",
                )
            ]
        except openai.NotFoundError:
            findings.append(
                wrong(
                    "model",
                    f"{variable}: the provider has no model {model!r}: set {variable} to a model its "
                    "GET /v1/models lists (e.g. gpt-4o-mini)",
                )
            )
            continue
        except openai.APIStatusError as exc:
            findings.append(wrong("model", f"{variable}: looking up {model!r} failed ({exc.status_code})"))
            continue
        findings.append(ok("model", f"{variable}={model} exists"))
    findings.insert(0, ok("openai", f"OPENAI_API_KEY accepted by {_endpoint(settings)}"))
    findings.append(await _moderation(settings, sdk))
    return findings


async def _moderation(settings: Settings, sdk: openai.AsyncOpenAI) -> Finding:
    safety = settings.safety
    if not safety.moderation:
        return skipped("moderation", "THREADWISE_MODERATION=false")
    try:
        await sdk.moderations.create(model=safety.moderation_model, input="threadwise doctor")
    except openai.NotFoundError:
        return wrong(
            "moderation",
            f"{_endpoint(settings)} has no moderation API or no model {safety.moderation_model!r}: set "
            "THREADWISE_MODERATION_MODEL to one it has, or THREADWISE_MODERATION=false for an endpoint "
            "without moderation",
        )
    except openai.APIStatusError as exc:
        return wrong("moderation", f"the moderation endpoint answered {exc.status_code}: {exc.message[:120]}")
    except openai.APIConnectionError as exc:
        return wrong("moderation", f"cannot reach the moderation endpoint ({describe(exc.__cause__ or exc)})")
    return ok("moderation", f"{safety.moderation_model} answers")


def provider_part(config: ProviderConfig) -> str:
    return f"provider {config.prefix}"


async def endpoint(settings: Settings, config: ProviderConfig) -> list[Finding]:
    """One THREADWISE_PROVIDERS endpoint: reachable, its key accepted (``GET /models``), and each configured
    model routed to it (longest prefix) listed there. Never prints the key."""
    part, where = provider_part(config), f"THREADWISE_PROVIDERS[{config.prefix!r}]"
    llm = LLMClient.create(
        api_key=config.api_key, base_url=config.base_url, timeout=LOOKUP_TIMEOUT, max_retries=0
    )
    try:
        page = await llm.sdk.models.list()
    except openai.AuthenticationError as exc:
        return [
            wrong(
                part,
                f"{where}: {config.base_url} refused its api_key ({exc.status_code}): set the key this "
                "endpoint expects",
            )
        ]
    except openai.APIConnectionError as exc:
        return [
            wrong(
                part,
                f"{where}: cannot reach {config.base_url} ({describe(exc.__cause__ or exc)}): check its "
                "base_url and that the server runs",
            )
        ]
    except openai.NotFoundError:
        return [
            ok(
                part,
                f"{config.base_url} answers but has no GET /models: its key and models were not checked",
            )
        ]
    except openai.APIStatusError as exc:
        return [wrong(part, f"{where}: GET {config.base_url}/models answered {exc.status_code}")]
    finally:
        await llm.close()
    listed = {model.id for model in page.data}
    findings = [ok(part, f"api_key accepted by {config.base_url} ({len(listed)} models listed)")]
    routed = settings.threadwise.provider_list()
    for variable, model in configured_models(settings):
        if provider_for(model, routed) != config:
            continue
        if model in listed:
            findings.append(ok("model", f"{variable}={model} exists at {config.base_url}"))
        else:
            findings.append(
                wrong(
                    "model",
                    f"{variable}: {config.base_url} ({where}) lists no model {model!r}: use a model its "
                    "GET /models lists, or change the prefix",
                )
            )
    return findings
