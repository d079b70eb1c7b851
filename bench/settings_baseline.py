"""The ingest ceiling: the connector's own settings (same middleware, database, logging, gunicorn command), with
one URL whose view reads the body and inserts one row. Used only by ``bench.ingest``."""

from connector.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls_baseline"
