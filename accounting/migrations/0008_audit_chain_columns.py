"""Tamper-evident audit, step 1 of 3: the chain columns (nullable until step 2 fills them) and the chain heads."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounting", "0007_awaiting_approval"),
        ("connector", "0004_reconciliation_checkpoint"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditChainHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveBigIntegerField(default=0)),
                ("hash", models.CharField(default="0000000000000000000000000000000000000000000000000000000000000000", max_length=64)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "tenant",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="audit_head", to="connector.tenant"
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="AuditCheck",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("checked_at", models.DateTimeField()),
                ("intact", models.BooleanField()),
                ("records", models.PositiveBigIntegerField(default=0, help_text="Records verified")),
                ("message", models.TextField(blank=True)),
                (
                    "tenant",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="audit_check", to="connector.tenant"
                    ),
                ),
            ],
        ),
    ]
    for model in ("postingattempt", "postinglog"):
        operations += [
            migrations.AddField(
                model_name=model,
                name="tenant",
                field=models.ForeignKey(
                    null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="connector.tenant"
                ),
            ),
            migrations.AddField(
                model_name=model,
                name="seq",
                field=models.PositiveBigIntegerField(
                    null=True, help_text="Position in the tenant's audit chain (1, 2, …)"
                ),
            ),
            migrations.AddField(
                model_name=model,
                name="prev_hash",
                field=models.CharField(
                    default="", max_length=64, help_text="Hash of the previous record of the tenant's chain"
                ),
                preserve_default=False,
            ),
            migrations.AddField(
                model_name=model,
                name="hash",
                field=models.CharField(
                    default="", max_length=64, help_text="SHA-256 of prev_hash + this record's canonical JSON"
                ),
                preserve_default=False,
            ),
            migrations.AlterField(
                model_name=model,
                name="created_at",
                field=models.DateTimeField(default=django.utils.timezone.now),
            ),
        ]
    operations += [
        migrations.AlterField(
            model_name="postingattempt",
            name="posting",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="attempt_log", to="accounting.posting"
            ),
        ),
        migrations.AlterField(
            model_name="postinglog",
            name="posting",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="log", to="accounting.posting"
            ),
        ),
        migrations.AlterField(
            model_name="postinglog",
            name="user",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, to=settings.AUTH_USER_MODEL
            ),
        ),
    ]
