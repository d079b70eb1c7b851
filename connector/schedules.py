"""The periodic sweep lives in django-q2's own Schedule table, created (or updated) after every migrate."""

from __future__ import annotations

from django.conf import settings

SWEEP_NAME = "connector-sweep"


def ensure_schedules(**kwargs) -> None:
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=SWEEP_NAME,
        defaults={
            "func": "connector.tasks.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.CONNECTOR["SWEEP_INTERVAL_MINUTES"],
            "repeats": -1,
        },
    )
