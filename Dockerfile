# One image for Heroku (container stack) and Fly.io: the web process by default, the worker and the
# release step by command (see Procfile and fly.toml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    LOG_FORMAT=json

WORKDIR /app

# Dependencies first, pinned, so a code change does not reinstall them.
COPY requirements/main.txt requirements/main.txt
RUN pip install -r requirements/main.txt

COPY pyproject.toml README.md alembic.ini Procfile ./
# app/sandbox/ (the demo) stays out: see .dockerignore.
COPY app app
COPY workers workers
COPY migrations migrations
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 woobird \
    && chown -R woobird /app

USER woobird
EXPOSE 8000

# Fly's worker process group and Heroku's worker dyno run: python -m workers
CMD ["sh", "-c", "exec uvicorn --factory app.main:create_app --host 0.0.0.0 --port ${PORT:-8000} --http app.http_limits:BoundedHttpToolsProtocol --timeout-keep-alive 5 --limit-concurrency 100 --timeout-graceful-shutdown 10 --no-proxy-headers"]
