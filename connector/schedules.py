"""The periodic sweep lives in django-q2's own Schedule table, created (or updated) after every migrate."""

from __future__ import annotations

from django.conf import settings
from django_q.models import Schedule

SCHEDULES = {
    # name: (task, setting holding the interval in minutes)
    "connector-sweep": ("connector.tasks.sweep", "SWEEP_INTERVAL_MINUTES"),
    "connector-reconcile": ("connector.tasks.reconcile", "RECONCILE_INTERVAL_MINUTES"),
    "connector-alerts": ("connector.tasks.send_alerts", "ALERT_INTERVAL_MINUTES"),
    "connector-verify-audit": ("connector.tasks.verify_audit", "AUDIT_VERIFY_INTERVAL_MINUTES"),
    "connector-refresh-charts": ("connector.tasks.refresh_charts", "CHART_REFRESH_INTERVAL_MINUTES"),
    "connector-daily-summaries": ("connector.tasks.close_daily_summaries", "SUMMARY_INTERVAL_MINUTES"),
}


def ensure_schedules(**kwargs) -> None:
    for name, (func, interval) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": settings.CONNECTOR[interval],
                "repeats": -1,
            },
        )
