"""The roles shipped with the connector: "Accountant" and "Operator" groups and the permissions they hold.

A data migration creates them, and every ``migrate`` brings them up to date (a permission added later joins its
group; a deleted group comes back). Which tenants a user sees is separate: ``Tenant.users`` (connector/access.py).
"""

from __future__ import annotations

GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    # Month-end: view everything an accountant reconciles, export it, approve, retry and re-post.
    "Accountant": (
        ("accounting", "view_posting"),
        ("accounting", "view_postingline"),
        ("accounting", "view_postingattempt"),
        ("accounting", "view_postinglog"),
        ("accounting", "view_channelmapping"),
        ("accounting", "operate_posting"),
        ("accounting", "export_posting"),
        ("accounting", "view_x3circuit"),
        ("connector", "view_tenant"),
        ("connector", "view_webhookevent"),
    ),
    # Set-up: tenants, their credentials (store and X3 connection) and channel mappings; records read-only.
    "Operator": (
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
    ),
}


def ensure_groups(apps=None, **kwargs) -> None:
    """Create the groups and give them their permissions (those that exist). Safe to run any number of times."""
    if apps is None:
        from django.apps import apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        codes = {codename for _, codename in wanted}
        perms = [
            p
            for p in Permission.objects.filter(codename__in=codes).select_related("content_type")
            if (p.content_type.app_label, p.codename) in wanted
        ]
        group.permissions.add(*perms)
