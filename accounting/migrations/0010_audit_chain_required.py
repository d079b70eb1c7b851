"""Tamper-evident audit, step 3 of 3: every record now has its place in its tenant's chain."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounting", "0009_audit_chain_backfill")]

    operations = []
    for model, constraint in (("postingattempt", "uniq_attempt_chain_seq"), ("postinglog", "uniq_log_chain_seq")):
        operations += [
            migrations.AlterField(
                model_name=model,
                name="tenant",
                field=models.ForeignKey(
                    on_delete=django.db.models.deletion.PROTECT, related_name="+", to="connector.tenant"
                ),
            ),
            migrations.AlterField(
                model_name=model,
                name="seq",
                field=models.PositiveBigIntegerField(help_text="Position in the tenant's audit chain (1, 2, …)"),
            ),
            migrations.AddConstraint(
                model_name=model,
                constraint=models.UniqueConstraint(fields=("tenant", "seq"), name=constraint),
            ),
        ]
