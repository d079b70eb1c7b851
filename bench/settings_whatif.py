"""The connector's settings and URLs, plus the ``bench.whatif`` variants named in ``BENCH_WHATIF`` (web and workers)."""

from connector.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.apps.WhatIfConfig"]  # noqa: F405
