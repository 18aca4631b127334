FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite+aiosqlite:////data/threadwise.db TIKTOKEN_CACHE_DIR=/app/tiktoken

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY core ./core
COPY bots ./bots
COPY migrations ./migrations
RUN pip install ".[postgres,redis]" \
    && useradd --create-home --uid 10001 threadwise \
    && mkdir -p /data /app/tiktoken && chown threadwise /data /app/tiktoken

USER threadwise
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"3000\")}/healthz', timeout=4)"
CMD ["threadwise", "serve"]
