from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from connector.configuration import ConfigurationError, apply_document, load_document


class Command(BaseCommand):
    help = "Create or update a tenant, its credentials and channel mappings from a JSON or TOML file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path, help="JSON or TOML file (format: docs/configuration.md)")

    def handle(self, *args, path: Path, **options) -> None:
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        try:
            tenant, created = apply_document(load_document(path))
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        verb = "Created" if created else "Updated"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} tenant {tenant.slug}: webhook URL /webhooks/bigcommerce/{tenant.slug}/"
            )
        )
