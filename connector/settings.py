"""Settings, read from the environment through django-environ.

With nothing set, the service runs anywhere on embedded defaults: SQLite in ``var/`` and the django-q2 ORM broker.
Production sets ``CONNECTOR_ENV=production`` plus ``SECRET_KEY``, ``ENCRYPTION_KEY``, ``ALLOWED_HOSTS``,
``DATABASE_URL`` (PostgreSQL) and optionally ``REDIS_URL`` (django-q2 broker). See docs/configuration.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
MIN_KEY_LENGTH = 32


def _production_key(name: str, published: str) -> str:
    """A key production may use: set, not the development value printed above, long and not repetitive."""
    value = env.str(name)
    how = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
    if value == published:
        raise ImproperlyConfigured(f"{name} is the published development value; {how}")
    if len(value) < MIN_KEY_LENGTH or len(set(value)) < 8:
        raise ImproperlyConfigured(
            f"{name} is too weak: use at least {MIN_KEY_LENGTH} random characters; {how}"
        )
    return value


if PRODUCTION:
    SECRET_KEY = _production_key("SECRET_KEY", _DEV_SECRET)
    # Dedicated key for credentials at rest, separate from SECRET_KEY so rotating one does not lose the other.
    CRYPTOGRAPHY_KEY = _production_key("ENCRYPTION_KEY", _DEV_ENCRYPTION_KEY)
    if CRYPTOGRAPHY_KEY == SECRET_KEY:
        raise ImproperlyConfigured("ENCRYPTION_KEY must differ from SECRET_KEY (see docs/configuration.md)")
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
    "axes",
    "csp",
    "connector",
    "accounting",
    "workspace",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires: it turns a lockout into the 429 page
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

# --- Admin login throttling (django-axes) -----------------------------------------------------------------------
# Failed logins are counted in the database per (username, client IP) by default; once LOGIN_FAILURE_LIMIT is
# reached, that pair gets 429 even with the right password until LOGIN_COOLOFF_MINUTES have passed (0: until
# `manage.py axes_reset`). See docs/configuration.md and docs/decisions/0011-admin-hardening-and-image.md.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out client before any password is checked
    "django.contrib.auth.backends.ModelBackend",
]
_LOCKOUT_BY = {
    # Locks one account from one address: an attacker cannot lock everybody out from behind a shared address.
    "username_ip": [["username", "ip_address"]],
    # Locks the address whatever username it tries (password spraying), and everyone else behind it.
    "ip": ["ip_address"],
}
AXES_ENABLED = env.bool("LOGIN_THROTTLING", default=True)
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
_cooloff_minutes = env.int("LOGIN_COOLOFF_MINUTES", default=15)
AXES_COOLOFF_TIME = timedelta(minutes=_cooloff_minutes) if _cooloff_minutes > 0 else None
_lockout_by = env.str("LOGIN_LOCKOUT_BY", default="username_ip")
if _lockout_by not in _LOCKOUT_BY:
    raise ImproperlyConfigured(
        f"LOGIN_LOCKOUT_BY must be one of {', '.join(_LOCKOUT_BY)}, not {_lockout_by!r}"
    )
AXES_LOCKOUT_PARAMETERS = _LOCKOUT_BY[_lockout_by]
AXES_RESET_ON_SUCCESS = True  # a successful login forgets the earlier typos of that user and address
AXES_LOCKOUT_TEMPLATE = "connector/login_locked.html"
# The client address: REMOTE_ADDR unless the service runs behind a proxy that sets X-Forwarded-For. Then set
# LOGIN_IP_HEADERS=HTTP_X_FORWARDED_FOR,REMOTE_ADDR; the right-most public address of the header is taken (the one
# the proxy appended, which the client cannot forge), or the one LOGIN_PROXY_COUNT proxies in when it is set.
AXES_IPWARE_META_PRECEDENCE_ORDER = tuple(env.list("LOGIN_IP_HEADERS", default=["REMOTE_ADDR"]))
AXES_IPWARE_PROXY_COUNT = env.int("LOGIN_PROXY_COUNT", default=None)
AXES_IPWARE_PROXY_ORDER = env.str("LOGIN_PROXY_ORDER", default="right-most")

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

# --- Content-Security-Policy (django-csp), in every mode ------------------------------------------------------------
# The admin and our pages load scripts and styles from this site only and have no inline script or style
# attributes (status colours are classes in connector/admin.css). Forms post to this site, and the "Connect to Sage
# X3" page adds the tenant's Sage authorise URL (the form's redirect goes there). CSP_REPORT_ONLY=true sends the
# same policy as Content-Security-Policy-Report-Only, to try a change without breaking anything.
_CSP = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if env.str("CSP_REPORT_URI", default=""):
    _CSP["DIRECTIVES"]["report-uri"] = [env.str("CSP_REPORT_URI")]
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP
else:
    CONTENT_SECURITY_POLICY = _CSP

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


def redis_url_with_timeouts(url: str) -> str:
    """The broker URL with connect/read timeouts unless it sets its own: a Redis that stops answering must not hold
    a webhook request or ``/readyz`` for minutes. The read timeout stays above the worker's 1-second blocking pop."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("socket_connect_timeout", "5")
    query.setdefault("socket_timeout", "10")
    return urlunsplit(parts._replace(query=urlencode(query)))


if REDIS_URL:
    Q_CLUSTER["redis"] = redis_url_with_timeouts(REDIS_URL)
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
    # A webhook is finished without a BigCommerce call when a committed re-read of its order started at least this
    # many seconds after the webhook was received (that read saw the change). Assumes NTP-synchronised clocks
    # between web servers and workers; raise it if they may drift (docs/decisions/0028-...).
    "COVERED_READ_MARGIN_SECONDS": env.float("COVERED_READ_MARGIN_SECONDS", default=0.0),
    # ... and when another worker is already processing one of the order's events claimed after this one was
    # received, wait up to this long for its read to commit instead of reading the order in parallel (0: never).
    "COVERED_READ_WAIT_SECONDS": env.float("COVERED_READ_WAIT_SECONDS", default=2.0),
    # After an unknown outcome (timeout/reset/5xx on create), wait this long before asking X3 for our reference.
    "UNKNOWN_OUTCOME_DELAY_SECONDS": env.int("UNKNOWN_OUTCOME_DELAY_SECONDS", default=20),
    # Circuit breaker per tenant: after this many consecutive "X3 unavailable" failures (refused, timeout, 5xx),
    # postings wait without spending attempts and one probe checks X3 every PROBE seconds, doubling up to the cap.
    "CIRCUIT_FAILURE_THRESHOLD": env.int("CIRCUIT_FAILURE_THRESHOLD", default=3),
    "CIRCUIT_PROBE_SECONDS": env.int("CIRCUIT_PROBE_SECONDS", default=30),
    "CIRCUIT_PROBE_CAP_SECONDS": env.int("CIRCUIT_PROBE_CAP_SECONDS", default=300),
    # X3's refusal for a date in a closed or not-yet-open period (its exact text is not documented by Sage: adjust
    # to your installation's language). The tenant's closed-period policy then applies; held entries are re-tried
    # once per tenant and period every CLOSED_PERIOD_RECHECK_MINUTES.
    "X3_CLOSED_PERIOD_PATTERN": env.str(
        "X3_CLOSED_PERIOD_PATTERN",
        default=r"(?i)(period|p[ée]riode)\b[^.;]*\b(is closed|closed|not open|clos|cl[oô]tur[ée]e?|ferm[ée]e?|non ouverte)",
    ),
    "CLOSED_PERIOD_RECHECK_MINUTES": env.int("CLOSED_PERIOD_RECHECK_MINUTES", default=360),
    "CLOSED_PERIOD_MAX_MOVES": env.int("CLOSED_PERIOD_MAX_MOVES", default=12),
    # The events doorbell (docs/decisions/0029-...): on Redis, a queued drain that never starts holds the doorbell
    # this long at most (the next webhook then rings again). A drain returns after this many events or seconds and
    # rings again, well within the task timeout.
    "EVENTS_DOORBELL_SECONDS": env.float("EVENTS_DOORBELL_SECONDS", default=5.0),
    # With Redis: a web process rings the doorbell from a thread of its own at most this often (0: in every
    # request). Adds at most this much latency to a webhook; saves a Redis round trip per delivery under load.
    "EVENTS_RING_INTERVAL_MS": env.int("EVENTS_RING_INTERVAL_MS", default=20),
    # A worker takes a new webhook event once it is this old, so that BigCommerce's other webhooks for the same change
    # (sent within milliseconds) are stored by then and served by one re-read (0: at once).
    "EVENTS_SETTLE_MS": env.int("EVENTS_SETTLE_MS", default=500),
    "DRAIN_MAX_EVENTS": env.int("DRAIN_MAX_EVENTS", default=100),
    "DRAIN_MAX_SECONDS": env.float("DRAIN_MAX_SECONDS", default=20.0),
    # Work untouched for this long is considered lost by its worker and re-queued by the sweep.
    "STALE_AFTER_SECONDS": env.int("STALE_AFTER_SECONDS", default=300),
    # Admin actions on more postings than this run as one queued batch with a progress page (connector/bulk.py).
    "BULK_INLINE_MAX": env.int("BULK_INLINE_MAX", default=20),
    "SWEEP_INTERVAL_MINUTES": env.int("SWEEP_INTERVAL_MINUTES", default=5),
    # Webhooks get lost, and BigCommerce deactivates hooks: every so often compare the store with our postings.
    "RECONCILE_INTERVAL_MINUTES": env.int("RECONCILE_INTERVAL_MINUTES", default=15),
    "RECONCILE_FIRST_LOOKBACK_HOURS": env.int("RECONCILE_FIRST_LOOKBACK_HOURS", default=24),
    "AUDIT_BODY_LIMIT": env.int("AUDIT_BODY_LIMIT", default=20_000),
    # The audit chain of every tenant is re-verified this often (reads every record): the admin shows the result.
    "AUDIT_VERIFY_INTERVAL_MINUTES": env.int("AUDIT_VERIFY_INTERVAL_MINUTES", default=24 * 60),
    # Every tenant's chart of accounts is re-read from Sage X3 this often (docs/chart-of-accounts.md).
    "CHART_REFRESH_INTERVAL_MINUTES": env.int("CHART_REFRESH_INTERVAL_MINUTES", default=24 * 60),
    # Daily summary mode: how often closed days are looked for and their summaries built (connector/summaries.py).
    "SUMMARY_INTERVAL_MINUTES": env.int("SUMMARY_INTERVAL_MINUTES", default=15),
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

# --- Alarms (connector/alerts.py) ---------------------------------------------------------------------------------
CONNECTOR.update(
    {
        # How often send_alerts gathers each tenant's alarm conditions and sends one digest per tenant.
        "ALERT_INTERVAL_MINUTES": env.int("ALERT_INTERVAL_MINUTES", default=5),
        # An unchanged alarm is repeated after this many hours while it lasts.
        "ALERT_RENOTIFY_HOURS": env.int("ALERT_RENOTIFY_HOURS", default=24),
        # Addresses that receive every tenant's digests, besides the tenant's own recipients.
        "ALERT_EMAILS": env.list("ALERT_EMAILS", default=[]),
        # Alarm when X3's circuit breaker has been open this long.
        "ALERT_CIRCUIT_OPEN_MINUTES": env.int("ALERT_CIRCUIT_OPEN_MINUTES", default=30),
        # Alarm when no webhook arrived for this long (a tenant's alarm recipients may override it; 0: off).
        "ALERT_WEBHOOK_SILENCE_HOURS": env.int("ALERT_WEBHOOK_SILENCE_HOURS", default=24),
        # Alarm when reconciliation runs in this window found at least ALERT_RECONCILE_MIN_MISSED orders/refunds
        # the webhooks had not brought (or re-activated a hook).
        "ALERT_RECONCILE_WINDOW_MINUTES": env.int("ALERT_RECONCILE_WINDOW_MINUTES", default=60),
        "ALERT_RECONCILE_MIN_MISSED": env.int("ALERT_RECONCILE_MIN_MISSED", default=1),
        # https://connector.example.com: digests then link to the admin pages they mention.
        "ALERT_LINK_BASE_URL": env.str("ALERT_LINK_BASE_URL", default=""),
    }
)

# Email (alarm digests): EMAIL_URL (smtp://user:password@host:587/?tls=True, smtp+ssl://…, consolemail://) or the
# separate EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS, EMAIL_USE_SSL. Without any,
# development prints mails on the console and production uses SMTP on localhost:25.
EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION or env.str("EMAIL_HOST", default="")
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
if env.str("EMAIL_URL", default=""):
    globals().update(env.email_url("EMAIL_URL"))
# Django's default is no timeout at all: a mail server that never answers would hang the alarm run.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="bc-x3-connector@localhost")
EMAIL_SUBJECT_PREFIX = env.str("EMAIL_SUBJECT_PREFIX", default="[BC→X3] ")

# --- Metrics (/metrics, connector/metrics.py) --------------------------------------------------------------------
# /metrics answers 404 unless one of these is set: a bearer token, and/or client addresses or networks allowed
# without it (REMOTE_ADDR: the direct peer, so behind a reverse proxy use the token).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes.apps": {"level": "WARNING"},  # its start-up banner, on every management command
        # django-q2 logs every enqueue ("Enqueued …") and every task at INFO: a line per webhook and per order.
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
    },
}
