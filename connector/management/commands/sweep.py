from connector.management.base import ConnectorCommand
from connector.pipeline import sweep


class Command(ConnectorCommand):
    help = "Find unfinished events and postings and queue them again (also runs every few minutes in the cluster)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(sweep())
