"""`threadwise doctor`: the database (reachable, migrations current), Redis, and the paths the service
writes."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from bots.checkup.findings import Finding, bounded, ok, skipped, wrong
from bots.readiness import describe
from core.db import health, migrate
from core.db.session import Database
from core.settings import Settings


def shown_url(url: str) -> str:
    """The URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


async def database(settings: Settings) -> list[Finding]:
    url = settings.service.database_url
    file = sqlite_file(url)
    if file is not None and not file.exists():  # connecting would create it: a check changes nothing
        return [
            ok("database", f"no file at {file} yet: `threadwise migrate` (or `serve`) creates it"),
            wrong("migrations", "the database has no schema yet: run `threadwise migrate`"),
        ]
    try:
        db = Database.from_url(url)
    except Exception as exc:  # unknown driver, missing package, malformed URL
        fix = "set DATABASE_URL to sqlite+aiosqlite:///path.db or postgresql+asyncpg://user:pw@host/db"
        if "asyncpg" in str(exc):
            fix = "install the PostgreSQL driver: pip install 'threadwise[postgres]'"
        return [
            wrong("database", f"DATABASE_URL: {describe(exc)}: {fix}"),
            skipped("migrations", "the database cannot be opened"),
        ]
    try:
        reached = await bounded(
            "database",
            lambda: _ping(db, url),
            fix=f"DATABASE_URL ({shown_url(url)}): check the host, port, credentials and database name",
        )
        if reached[0].state != "ok":
            return [*reached, skipped("migrations", "the database does not answer")]
        return [*reached, *await bounded("migrations", lambda: _schema(db), fix="run `threadwise migrate`")]
    finally:
        await db.close()


async def _ping(db: Database, url: str) -> list[Finding]:
    try:
        await health.ping(db)
    except Exception as exc:
        return [
            wrong(
                "database",
                f"DATABASE_URL ({shown_url(url)}) does not answer ({describe(exc)}): check the host, port, "
                "credentials and database name, and that the server runs",
            )
        ]
    return [ok("database", f"answers ({shown_url(url)})")]


async def _schema(db: Database) -> list[Finding]:
    head = migrate.head_revision()
    gap = await health.schema_gap(db, head)
    if gap is not None:
        return [wrong("migrations", gap)]
    return [ok("migrations", f"at {head}, the newest this version has")]


async def redis(settings: Settings) -> list[Finding]:
    url = settings.service.redis_url
    if not url:
        return [skipped("redis", "REDIS_URL is not set (rate limits are counted per process)")]
    try:
        from core.guards.rate_limit import rate_limit_storage

        storage = rate_limit_storage(url)
    except Exception as exc:  # no redis package, or a scheme limits does not know
        fix = "install the client: pip install 'threadwise[redis]'" if "redis" in str(exc).lower() else ""
        return [
            wrong("redis", f"REDIS_URL ({shown_url(url)}): {describe(exc)}" + (f": {fix}" if fix else ""))
        ]

    async def check() -> list[Finding]:
        if await storage.check():
            return [ok("redis", f"answers ({shown_url(url)})")]
        return [
            wrong(
                "redis",
                f"REDIS_URL ({shown_url(url)}) does not answer: check the host, port, password and db number",
            )
        ]

    return await bounded("redis", check, fix=f"REDIS_URL ({shown_url(url)}): check the host and port")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None: another database, or in memory)."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database)).resolve()


def writable_paths(settings: Settings) -> list[Finding]:
    """The SQLite file and its folder (WAL needs both), and the token-table cache if one is named."""
    findings: list[Finding] = []
    path = sqlite_file(settings.service.database_url)
    if path is not None:
        folder = path.parent
        if not folder.is_dir():
            findings.append(
                wrong(
                    "paths", f"DATABASE_URL: the folder {folder} does not exist: create it or change the path"
                )
            )
        elif not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            findings.append(
                wrong(
                    "paths",
                    f"DATABASE_URL: {path} is not writable by this user (uid {os.getuid()}): give it the "
                    "folder (chown) or point DATABASE_URL elsewhere",
                )
            )
        else:
            findings.append(ok("paths", f"{path} is writable"))
    cache = os.environ.get("TIKTOKEN_CACHE_DIR")
    if cache and not Path(cache).is_dir():
        findings.append(
            wrong("paths", f"TIKTOKEN_CACHE_DIR: {cache} is not a folder: create it or unset the variable")
        )
    if not findings:
        findings.append(skipped("paths", "no local file to write (the database is not SQLite)"))
    return findings
