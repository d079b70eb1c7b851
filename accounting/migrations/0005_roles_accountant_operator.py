# Roles shipped with the connector: "Accountant" and "Operator" groups (docs/workspace.md, decision 0015).

from django.contrib.auth.management import create_permissions
from django.db import migrations

ACCOUNTANT = [
    # view everything an accountant reconciles, export it, retry and re-post
    ("accounting", "view_posting"),
    ("accounting", "view_postingline"),
    ("accounting", "view_postingattempt"),
    ("accounting", "view_postinglog"),
    ("accounting", "view_channelmapping"),
    ("accounting", "operate_posting"),
    ("accounting", "export_posting"),
    ("connector", "view_tenant"),
    ("connector", "view_webhookevent"),
]
OPERATOR = [
    # tenants, their credentials (store and X3 connection inlines) and channel mappings; records read-only
    ("connector", "view_tenant"),
    ("connector", "change_tenant"),
    ("connector", "add_tenant"),
    ("connector", "view_bigcommercestore"),
    ("connector", "add_bigcommercestore"),
    ("connector", "change_bigcommercestore"),
    ("connector", "view_x3connection"),
    ("connector", "add_x3connection"),
    ("connector", "change_x3connection"),
    ("connector", "view_webhookevent"),
    ("accounting", "view_channelmapping"),
    ("accounting", "add_channelmapping"),
    ("accounting", "change_channelmapping"),
    ("accounting", "delete_channelmapping"),
    ("accounting", "view_posting"),
    ("accounting", "view_postingline"),
    ("accounting", "view_postinglog"),
    ("accounting", "view_postingattempt"),
]
GROUPS = {"Accountant": ACCOUNTANT, "Operator": OPERATOR}


def create_groups(apps, schema_editor):
    # Permissions are normally created after migrate; create them now so the groups can hold them.
    for label in ("accounting", "connector"):
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, verbosity=0, apps=apps)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in codenames:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("accounting", "0004_posting_order_modified_at"),
        ("connector", "0005_tenant_users"),
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
