"""Settings, read from the environment through django-environ.

With nothing set, the service runs anywhere on embedded defaults: SQLite in ``var/`` and the django-q2 ORM broker.
Production sets ``CONNECTOR_ENV=production`` plus ``SECRET_KEY``, ``ENCRYPTION_KEY``, ``ALLOWED_HOSTS``,
``DATABASE_URL`` (PostgreSQL) and optionally ``REDIS_URL`` (django-q2 broker). See docs/configuration.md.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(env_file)
VAR_DIR = Path(env.str("CONNECTOR_VAR_DIR", default=str(BASE_DIR / "var")))

CONNECTOR_ENV = env.str("CONNECTOR_ENV", default="development")
if CONNECTOR_ENV not in ("development", "production", "test"):
    raise ImproperlyConfigured(
        f"CONNECTOR_ENV must be development, production or test, not {CONNECTOR_ENV!r}"
    )
PRODUCTION = CONNECTOR_ENV == "production"

DEBUG = env.bool("DEBUG", default=not PRODUCTION)

# Insecure fallbacks exist only outside production, so `check --deploy` and a missing key fail loudly there.
_DEV_SECRET = "dev-only-insecure-secret-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
_DEV_ENCRYPTION_KEY = "dev-only-insecure-encryption-key"  # noqa: S105
if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY")
    # Dedicated key for credentials at rest, separate from SECRET_KEY so rotating one does not lose the other.
    CRYPTOGRAPHY_KEY = env.str("ENCRYPTION_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
else:
    SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET)
    CRYPTOGRAPHY_KEY = env.str("ENCRYPTION_KEY", default=_DEV_ENCRYPTION_KEY)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "import_export",
    "connector",
    "accounting",
    "workspace",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "connector.urls"
WSGI_APPLICATION = "connector.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Production must say where its database is; only development falls back to the embedded SQLite file.
DATABASES = {
    "default": env.db("DATABASE_URL")
    if PRODUCTION
    else env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'connector.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(
        parents=True, exist_ok=True
    )  # a fresh checkout has no var/
    # Several processes (web, workers) share the file: wait for locks instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security (production) -------------------------------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"

# --- django-q2 ---------------------------------------------------------------------------------------------------
# The queue is only a doorbell: every unit of work is a database row and `sweep` re-rings for anything unfinished.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER: dict = {
    "name": env.str("Q_CLUSTER_NAME", default="connector"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=120),  # a single order's work; must stay below `retry`
    "retry": env.int("Q_RETRY", default=180),
    "max_attempts": 3,  # broker redelivery after a crashed worker; our own backoff lives in the database
    "save_limit": env.int("Q_SAVE_LIMIT", default=1000),
    "ack_failures": True,  # a failed task is recorded, not redelivered: the sweep owns retries
    "catch_up": False,
    "label": "Background tasks",
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = env.float("Q_POLL", default=0.2)

# --- Connector ---------------------------------------------------------------------------------------------------
CONNECTOR = {
    # Bodies above this are refused with 413 before any parsing; BigCommerce payloads are under 1 KB.
    "WEBHOOK_MAX_BODY_BYTES": env.int("WEBHOOK_MAX_BODY_BYTES", default=64 * 1024),
    # Posting retries: attempt n waits between half and all of min(cap, base * 2**(n-1)) seconds ("equal jitter").
    "RETRY_BASE_SECONDS": env.int("RETRY_BASE_SECONDS", default=30),
    "RETRY_CAP_SECONDS": env.int("RETRY_CAP_SECONDS", default=3600),
    "MAX_ATTEMPTS": env.int("POSTING_MAX_ATTEMPTS", default=8),
    # After an unknown outcome (timeout/reset/5xx on create), wait this long before asking X3 for our reference.
    "UNKNOWN_OUTCOME_DELAY_SECONDS": env.int("UNKNOWN_OUTCOME_DELAY_SECONDS", default=20),
    # Work untouched for this long is considered lost by its worker and re-queued by the sweep.
    "STALE_AFTER_SECONDS": env.int("STALE_AFTER_SECONDS", default=300),
    "SWEEP_INTERVAL_MINUTES": env.int("SWEEP_INTERVAL_MINUTES", default=5),
    # Webhooks get lost, and BigCommerce deactivates hooks: every so often compare the store with our postings.
    "RECONCILE_INTERVAL_MINUTES": env.int("RECONCILE_INTERVAL_MINUTES", default=15),
    "RECONCILE_FIRST_LOOKBACK_HOURS": env.int("RECONCILE_FIRST_LOOKBACK_HOURS", default=24),
    "AUDIT_BODY_LIMIT": env.int("AUDIT_BODY_LIMIT", default=20_000),
    # Sage X3 OAuth2 ("Connect to Sage X3"). The redirect URI must match the one registered in the Sage App Registry
    # exactly; blank: built from the request (https://<host>/x3/oauth/callback/).
    "X3_OAUTH_REDIRECT_URI": env.str("X3_OAUTH_REDIRECT_URI", default=""),
    "X3_OAUTH_STATE_TTL_SECONDS": env.int("X3_OAUTH_STATE_TTL_SECONDS", default=900),
    # The callback may name another regional gateway; the client secret is sent there, so only such hosts pass.
    "X3_OAUTH_ENDPOINT_HOST_PATTERN": env.str(
        "X3_OAUTH_ENDPOINT_HOST_PATTERN", default=r"api\.[a-z0-9-]+-sagex3\.com"
    ),
    # The admin warns this many days before the refresh token (30 days, rotating) expires.
    "X3_REFRESH_WARNING_DAYS": env.int("X3_REFRESH_WARNING_DAYS", default=7),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
