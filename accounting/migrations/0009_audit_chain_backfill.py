"""Tamper-evident audit, step 2 of 3: chain the records written before the chain existed, per tenant."""

from django.db import migrations


def chain_existing(apps, schema_editor) -> None:
    from accounting.audit_chain import rechain_existing

    rechain_existing(
        apps.get_model("accounting", "PostingLog"),
        apps.get_model("accounting", "PostingAttempt"),
        apps.get_model("accounting", "AuditChainHead"),
        apps.get_model("accounting", "Posting"),
    )


class Migration(migrations.Migration):
    dependencies = [("accounting", "0008_audit_chain_columns")]

    operations = [migrations.RunPython(chain_existing, migrations.RunPython.noop)]
