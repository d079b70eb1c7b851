"""Run the whole service in one terminal: migrate, then the web server (gunicorn) and the django-q2 cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from connector.management.base import ConnectorCommand
from connector.metrics import prepare_multiprocess_dir


class Command(ConnectorCommand):
    help = "Migrate, then run gunicorn and the django-q2 cluster together until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1:8000"))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "3")))
        parser.add_argument("--no-cluster", action="store_true", help="Run only the web server")

    def handle(self, *args, bind: str, web_workers: int, no_cluster: bool, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._admin_user_hint()
        # The web workers and the cluster's workers count into one directory, so /metrics shows them all.
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(Path(settings.VAR_DIR) / "prometheus")
        prepare_multiprocess_dir(metrics_dir)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        procs: list[subprocess.Popen] = [
            subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "connector.wsgi",
                    "--bind",
                    bind,
                    "--workers",
                    str(web_workers),
                    "--access-logfile",
                    "-",
                    "--graceful-timeout",
                    "10",
                ]
            )
        ]
        if not no_cluster:
            procs.append(subprocess.Popen([sys.executable, "manage.py", "qcluster"]))  # noqa: S603
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: http://{bind}/admin/  ·  webhooks: http://{bind}/webhooks/bigcommerce/<tenant>/"
            )
        )
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.5)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.stdout.write("Stopped.")

    def _admin_user_hint(self) -> None:
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        if (
            username
            and os.environ.get("DJANGO_SUPERUSER_PASSWORD")
            and not User.objects.filter(username=username).exists()
        ):
            call_command(
                "createsuperuser",
                interactive=False,
                username=username,
                email=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""),
                verbosity=0,
            )
            self.stdout.write(f"Created admin user {username}.")
        elif not User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                self.style.WARNING(
                    "No admin user yet. Create one with: uv run python manage.py createsuperuser "
                    "(or set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD before starting)."
                )
            )
