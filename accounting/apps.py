from django.apps import AppConfig


class AccountingConfig(AppConfig):
    name = "accounting"
    verbose_name = "Accounting: mappings and postings"
    default_auto_field = "django.db.models.BigAutoField"
