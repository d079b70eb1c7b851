"""Test settings: the real settings plus inline tasks and fast hashing. DATABASE_URL/REDIS_URL still apply."""

from .settings import *  # noqa: F403
from .settings import Q_CLUSTER

Q_CLUSTER["sync"] = True  # tasks run inline where they are enqueued (after commit) and raise
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Static files are not served in tests; WhiteNoise would warn about a STATIC_ROOT nobody collected.
MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405

# End-to-end tests run the connector's web server and workers as separate processes on the test database, so on
# SQLite it must be a file they can all open (PostgreSQL test databases are shared anyway).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405

# Every delivery rings the events doorbell inside its request, so what a request did is visible when it returns;
# the web process's ringer thread (EVENTS_RING_INTERVAL_MS) has tests of its own.
CONNECTOR["EVENTS_RING_INTERVAL_MS"] = 0  # noqa: F405
