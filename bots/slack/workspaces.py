"""The workspace a Slack request comes from, as the adapter talks to it: a Web API client with that
workspace's bot token, its people (users.info, cached) and its files (downloaded with that token).

One bot token (SLACK_BOT_TOKEN): the same workspace for every request. Distribution (OAuth): bolt's authorize
has found the request's installation and set its token on the request's client (``context.client``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import aiohttp
from slack_bolt.async_app import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.files import FileFetcher, FileLimits
from bots.slack.identity import Cache, Directory
from core.documents.reader import DocumentReader

WORKSPACE_CACHES = 1_000  # workspaces whose users.info answers are kept (least recently used go first)


@dataclass(frozen=True, slots=True)
class Workspace:
    team_id: str
    client: AsyncWebClient
    directory: Directory
    fetcher: FileFetcher


class Workspaces:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_url: str,
        admins: tuple[str, ...],
        limits: FileLimits,
        single: AsyncWebClient | None,
        documents: DocumentReader | None = None,
    ) -> None:
        """``single``: the client of SLACK_BOT_TOKEN (one workspace); None: OAuth, a token per workspace."""
        self._session = session
        self._api_url = api_url
        self._admins = admins
        self._limits = limits
        self._documents = documents
        self._caches: OrderedDict[str, Cache] = OrderedDict()
        self._single = self._build("", single, str(single.token)) if single is not None else None

    @property
    def single(self) -> Workspace | None:
        return self._single

    def of(self, context: AsyncBoltContext) -> Workspace:
        if self._single is not None:
            return self._single
        client = context.client
        token = context.bot_token or client.token
        if client is None or not token:  # bolt's authorize lets no request without a token through
            raise LookupError(f"no bot token for workspace {context.team_id}")
        return self._build(str(context.team_id or ""), client, token)

    def _build(self, team_id: str, client: AsyncWebClient, token: str) -> Workspace:
        cache = self._caches.get(team_id)
        if cache is None:
            cache = self._caches[team_id] = {}
            if len(self._caches) > WORKSPACE_CACHES:
                self._caches.popitem(last=False)
        else:
            self._caches.move_to_end(team_id)
        fetcher = FileFetcher(
            self._session,
            client,
            token=token,
            api_url=self._api_url,
            limits=self._limits,
            documents=self._documents,
        )
        return Workspace(team_id, client, Directory(client, admins=self._admins, cache=cache), fetcher)
