"""`threadwise doctor` for Slack: the bot token (``auth.test``), its scopes against manifest.yml (the
``X-OAuth-Scopes`` header of that answer), and the app token of Socket Mode (``apps.connections.open``)."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.checkup.findings import Finding, ok, skipped, wrong
from bots.readiness import describe
from bots.slack.scopes import BOT_SCOPES
from core.settings import Settings

TIMEOUT = 10


async def slack(settings: Settings) -> list[Finding]:
    config = settings.slack
    if config.bot_token is None:
        return [skipped("slack", "SLACK_BOT_TOKEN is not set")]
    findings: list[Finding] = []
    if config.app_token is None and config.signing_secret is None:
        findings.append(
            wrong(
                "slack",
                "set SLACK_APP_TOKEN (Socket Mode: Basic Information, App-Level Tokens, scope "
                "connections:write) or SLACK_SIGNING_SECRET (HTTP events: Basic Information, App "
                "Credentials)",
            )
        )
    async with aiohttp.ClientSession() as session:
        client = AsyncWebClient(
            token=config.bot_token.get_secret_value(),
            base_url=config.api_url,
            session=session,
            timeout=TIMEOUT,
        )
        try:
            answer = await client.auth_test()
        except SlackApiError as exc:
            error = exc.response.get("error")
            return [
                *findings,
                wrong(
                    "slack",
                    f"SLACK_BOT_TOKEN: Slack refused it ({error}): use the app's Bot User OAuth Token "
                    "(xoxb-…) from OAuth & Permissions",
                ),
            ]
        except (aiohttp.ClientError, TimeoutError) as exc:
            return [
                *findings,
                wrong("slack", f"SLACK_API_URL: cannot reach {config.api_url} ({describe(exc)})"),
            ]
        findings.append(
            ok("slack", f"SLACK_BOT_TOKEN accepted: bot {answer.get('user')} in {answer.get('team')}")
        )
        findings.append(_scopes(answer.headers))
        if config.app_token is not None:
            findings.append(await _app_token(session, config.api_url, config.app_token.get_secret_value()))
    return findings


def _scopes(headers: dict[str, object]) -> Finding:
    granted_header = next((str(v) for k, v in headers.items() if k.lower() == "x-oauth-scopes"), None)
    if granted_header is None:
        return skipped("slack scopes", "Slack did not report the token's scopes (no X-OAuth-Scopes header)")
    granted = {scope.strip() for scope in granted_header.split(",") if scope.strip()}
    missing = [scope for scope in BOT_SCOPES if scope not in granted]
    if missing:
        return wrong(
            "slack scopes",
            f"the app lacks {', '.join(missing)} (manifest.yml asks for them): add them under OAuth & "
            "Permissions (or paste manifest.yml in App Manifest), then reinstall the app to the workspace",
        )
    return ok("slack scopes", f"all {len(BOT_SCOPES)} scopes of manifest.yml granted")


async def _app_token(session: aiohttp.ClientSession, api_url: str, token: str) -> Finding:
    client = AsyncWebClient(token=token, base_url=api_url, session=session, timeout=TIMEOUT)
    try:
        await client.apps_connections_open(app_token=token)
    except SlackApiError as exc:
        return wrong(
            "slack socket mode",
            f"SLACK_APP_TOKEN: Slack refused it ({exc.response.get('error')}): generate an App-Level Token "
            "(xapp-…) with the connections:write scope under Basic Information, and enable Socket Mode",
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return wrong("slack socket mode", f"SLACK_API_URL: cannot reach {api_url} ({describe(exc)})")
    return ok("slack socket mode", "SLACK_APP_TOKEN accepted (Socket Mode)")
