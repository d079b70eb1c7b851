from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    """The accountant's workspace: dashboard, reconciliation, trial balance and their exports (admin pages)."""

    name = "workspace"
    verbose_name = "Accountant's workspace"
