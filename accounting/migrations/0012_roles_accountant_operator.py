# Roles shipped with the connector: "Accountant" and "Operator" groups (docs/workspace.md, decision 0015).

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_groups(apps, schema_editor):
    from accounting.roles import ensure_groups

    # Permissions are normally created after migrate; create them now so the groups can hold them.
    for label in ("accounting", "connector"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, verbosity=0, apps=apps)
        config.models_module = None
    ensure_groups(apps)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=("Accountant", "Operator")).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("accounting", "0011_closed_periods"),
        ("connector", "0009_tenant_users"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="posting",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("operate_posting", "Can retry and re-post postings and webhook events"),
                    ("export_posting", "Can export postings, reconciliation and trial balance"),
                ],
            },
        ),
        migrations.RunPython(create_groups, remove_groups),
    ]
