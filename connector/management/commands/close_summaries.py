from django.core.management.base import BaseCommand

from connector.summaries import close_due_days


class Command(BaseCommand):
    help = (
        "Daily summary mode: build the summaries of every closed day that has entries waiting, and queue them "
        "(also runs every few minutes in the cluster; running it again changes nothing)."
    )

    def handle(self, *args, **options) -> None:
        self.stdout.write(close_due_days())
