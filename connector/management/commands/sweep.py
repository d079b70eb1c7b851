from django.core.management.base import BaseCommand

from connector.pipeline import sweep


class Command(BaseCommand):
    help = "Find unfinished events and postings and queue them again (also runs every few minutes in the cluster)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(sweep())
