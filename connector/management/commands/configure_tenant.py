from pathlib import Path

from connector.configuration import ConfigurationError, apply_document, load_document
from connector.management.base import ConnectorCommand, usage_error


class Command(ConnectorCommand):
    help = "Create or update a tenant, its credentials and channel mappings from a JSON or TOML file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="JSON or TOML file (format: docs/configuration.md)")

    def handle(self, *args, path: Path, **options) -> None:
        if not path.exists():
            raise usage_error(f"{path} does not exist")
        try:
            tenant, created = apply_document(load_document(path))
        except ConfigurationError as exc:
            raise usage_error(str(exc)) from exc
        verb = "Created" if created else "Updated"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} tenant {tenant.slug}: webhook URL /webhooks/bigcommerce/{tenant.slug}/"
            )
        )
