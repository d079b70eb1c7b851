from django.apps import AppConfig


class ConnectorConfig(AppConfig):
    name = "connector"
    verbose_name = "Connector: tenants and webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: models cannot be imported before the app registry is ready.
        from django.db.models.signals import post_delete, post_migrate, post_save

        from .intake import forget_receivers
        from .models import BigCommerceStore, Tenant
        from .schedules import ensure_schedules

        post_migrate.connect(ensure_schedules, sender=self)
        for model in (Tenant, BigCommerceStore):
            post_save.connect(
                forget_receivers, sender=model, dispatch_uid=f"forget-receivers-{model.__name__}"
            )
            post_delete.connect(
                forget_receivers, sender=model, dispatch_uid=f"forget-receivers-del-{model.__name__}"
            )
