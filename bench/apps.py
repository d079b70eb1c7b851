"""``bench.settings_whatif`` only: apply the ``BENCH_WHATIF`` variants once Django's apps are ready."""

from django.apps import AppConfig


class WhatIfConfig(AppConfig):
    name = "bench"
    label = "bench_whatif"

    def ready(self) -> None:
        from . import whatif

        whatif.apply()
