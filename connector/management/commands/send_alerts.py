from connector.alerts import send_alerts
from connector.management.base import ConnectorCommand


class Command(ConnectorCommand):
    help = "Gather every tenant's alarm conditions and send one digest per tenant (also runs every few minutes in "
    "the cluster)."

    def handle(self, *args, **options) -> None:
        self.stdout.write(send_alerts())
