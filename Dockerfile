# Production image: gunicorn for the web process; run the same image with `python manage.py qcluster` for workers.
# Two stages: the builder installs a pinned uv and the locked dependencies and collects the static files; the
# runtime image gets only the virtual environment and the application packages (no uv, tests, bench, simulators,
# docs or .env: see .dockerignore).
ARG PYTHON_IMAGE=python:3.11-slim
ARG UV_VERSION=0.13.9

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION
ENV PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH="/opt/venv/bin:$PATH"
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-cache
# Only what the service runs; an allow-list, so nothing else in the build context can slip in.
COPY manage.py ./
COPY connector/ connector/
COPY accounting/ accounting/
COPY integrations/ integrations/
COPY examples/ examples/
# collectstatic needs settings but no real secrets or database: throwaway random keys, forgotten after this step.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    ENCRYPTION_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')" \
    CONNECTOR_ENV=production ALLOWED_HOSTS=localhost DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    STATIC_ROOT=/app/static \
    python manage.py collectstatic --noinput \
 && rm -f /tmp/build.sqlite3

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:$PATH" \
    CONNECTOR_ENV=production \
    CONNECTOR_VAR_DIR=/app/var \
    STATIC_ROOT=/app/static \
    PROMETHEUS_MULTIPROC_DIR=/app/var/prometheus
RUN useradd --create-home --uid 1000 connector
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
RUN mkdir -p /app/var && chown connector /app/var

USER connector
EXPOSE 8000
# Sends a Host that ALLOWED_HOSTS accepts and the proxy's X-Forwarded-Proto, as a real request arrives; a plain
# GET would get 400 (host) or a redirect to HTTPS in production mode.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["python", "-m", "connector.healthcheck"]
# /metrics adds up every gunicorn worker through PROMETHEUS_MULTIPROC_DIR, emptied at start (docs/operations.md).
# Workers (qcluster) count their X3/BigCommerce calls there too when they share this directory (a shared volume).
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && python manage.py migrate --noinput && exec gunicorn connector.wsgi --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY:-3} --access-logfile -"]
