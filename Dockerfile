# Threadwise: `docker build -t threadwise .`, then `docker run --env-file .env -p 3000:3000 -v tw:/data threadwise`
# (or compose.yaml for PostgreSQL, Redis and two replicas). Two stages: the build stage installs the locked
# dependencies (requirements.lock, made by .ci/lock) and the project into a virtualenv and fetches tiktoken's
# tables; the runtime stage holds that virtualenv and the tables, runs as a non-root user, and counts tokens
# exactly with no network.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/threadwise PATH=/opt/threadwise/bin:$PATH TIKTOKEN_CACHE_DIR=/opt/tiktoken
RUN python -m venv /opt/threadwise
WORKDIR /src
# Dependencies first (their layer is reused until the lock changes), at exactly the locked versions.
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY core ./core
COPY bots ./bots
COPY migrations ./migrations
RUN pip install --no-deps . && pip check
# tiktoken's tables: o200k_base (gpt-4o, gpt-4.1, gpt-5, o-series) and cl100k_base (gpt-4, gpt-3.5), each
# with its parsed ranks (core/llm/ranks_cache.py), so a start reads them instead of parsing the tables.
RUN python -c "from core.llm.tokens import load_encoding; [load_encoding(n) for n in ('o200k_base', 'cl100k_base')]" \
    && test "$(ls /opt/tiktoken/*.ranks | wc -l)" -ge 2

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/threadwise PATH=/opt/threadwise/bin:$PATH TIKTOKEN_CACHE_DIR=/opt/tiktoken \
    DATABASE_URL=sqlite+aiosqlite:////data/threadwise.db PORT=3000
RUN useradd --create-home --uid 10001 threadwise \
    && mkdir -p /data && chown threadwise /data
COPY --from=build /opt/threadwise /opt/threadwise
COPY --from=build /opt/tiktoken /opt/tiktoken
WORKDIR /home/threadwise
USER threadwise
VOLUME ["/data"]
EXPOSE 3000
# Ready (not just alive): the database answers, migrations are current, every adapter is connected.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"3000\")}/readyz', timeout=4)"
CMD ["threadwise", "serve"]
