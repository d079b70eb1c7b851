from django.apps import AppConfig


class AccountingConfig(AppConfig):
    name = "accounting"
    verbose_name = "Accounting: mappings and postings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .roles import ensure_groups

        # After every migrate (and a test flush): the groups exist and hold their permissions.
        post_migrate.connect(lambda **kwargs: ensure_groups(), sender=self, weak=False)
