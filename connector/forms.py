"""Admin forms. Secrets are write-only: the form never renders a stored value, only whether one is set."""

from __future__ import annotations

from urllib.parse import urlsplit

from django import forms

from integrations.sagex3.rest import effective_mapping, validate_mapping

from .models import AlertSettings, BigCommerceStore, Tenant, X3Connection


class SecretFieldsForm(forms.ModelForm):
    """Replaces each field named in ``secret_fields`` with an empty password input. Blank keeps the stored value."""

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in self.secret_fields:
            current = getattr(self.instance, name, "") if self.instance.pk else ""
            label = self.fields[name].label if name in self.fields else name.replace("_", " ")
            self.fields[name] = forms.CharField(
                label=label,
                required=False,
                strip=True,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text="Set — leave blank to keep it; type a new value to replace it."
                if current
                else "Not set — type a value to set it.",
            )

    def clean(self):
        cleaned = super().clean() or {}
        for name in self.secret_fields:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


# BigCommerce's fixed order status IDs (docs/reference/bigcommerce.md §6.3); merchants may rename the labels.
ORDER_STATUSES = [
    (0, "Incomplete"),
    (1, "Pending"),
    (2, "Shipped"),
    (3, "Partially Shipped"),
    (4, "Refunded"),
    (5, "Cancelled"),
    (6, "Declined"),
    (7, "Awaiting Payment"),
    (8, "Awaiting Pickup"),
    (9, "Awaiting Shipment"),
    (10, "Completed"),
    (11, "Awaiting Fulfillment"),
    (12, "Manual Verification Required"),
    (13, "Disputed"),
    (14, "Partially Refunded"),
]


class TenantForm(forms.ModelForm):
    confirmed_status_ids = forms.TypedMultipleChoiceField(
        choices=[(str(i), f"{i} · {label}") for i, label in ORDER_STATUSES],
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        label="Confirmed statuses",
        help_text="An order posts once it reaches one of these (default: BigCommerce's paid statuses). Refunded "
        "and Partially Refunded orders also post; Cancelled and Declined ones are reversed.",
    )

    class Meta:
        model = Tenant
        fields = (
            "name",
            "slug",
            "is_active",
            "confirmed_status_ids",
            "gl_date_policy",
            "rounding_account",
            "rounding_threshold",
            "order_refund_policy",
            "refund_account",
            "refund_restock_cogs",
            "review_policy",
            "closed_period_policy",
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initial["confirmed_status_ids"] = [
            str(i) for i in self.initial.get("confirmed_status_ids") or []
        ]


class BigCommerceStoreForm(SecretFieldsForm):
    secret_fields = ("access_token", "client_secret", "webhook_header_value")

    class Meta:
        model = BigCommerceStore
        fields = (
            "store_hash",
            "access_token",
            "client_id",
            "client_secret",
            "api_base_url",
            "accept_standard_webhooks",
            "accept_custom_header",
            "webhook_header_name",
            "webhook_header_value",
            "accept_x_bc_signature",
        )

    # Which authentication schemes may be combined is checked by BigCommerceStore.clean(), for files too.


class X3ConnectionForm(SecretFieldsForm):
    """Every method's fields; the admin shows those of the chosen method, and ``X3Connection.clean`` requires them.

    OAuth2 tokens are not form fields at all: only "Connect to Sage X3" writes them.
    """

    secret_fields = ("password", "oauth_client_secret", "app_secret")

    class Meta:
        model = X3Connection
        fields = (
            "method",
            "server_url",
            "folder",
            "username",
            "password",
            "entry_type",
            "journal",
            "site",
            "reference_prefix",
            "timeout_seconds",
            "verify_tls",
            "ca_bundle",
            "rest_mapping",
            "soap_public_name",
            "soap_pool_alias",
            "soap_pool_id",
            "soap_code_lang",
            "soap_request_config",
            "soap_wsdl_url",
            "soap_mapping",
            "graphql_url",
            "graphql_mutation",
            "graphql_variables",
            "graphql_lookup_query",
            "graphql_mapping",
            "oauth_client_id",
            "oauth_client_secret",
            "oauth_authorise_url",
            "oauth_token_url",
            "oauth_scope",
            "oauth_token_format",
            "app_client_id",
            "app_secret",
            "app_user",
            "app_audience",
            "app_token_lifetime",
            "chart_query",
        )
        widgets = {
            "graphql_mutation": forms.Textarea(attrs={"rows": 12, "cols": 90, "class": "vLargeTextField"}),
            "graphql_lookup_query": forms.Textarea(
                attrs={"rows": 12, "cols": 90, "class": "vLargeTextField"}
            ),
        }

    def clean_rest_mapping(self):
        mapping = self.cleaned_data.get("rest_mapping") or {}
        if not isinstance(mapping, dict):
            raise forms.ValidationError("The mapping must be a JSON object.")
        problems = validate_mapping(effective_mapping(mapping))
        if problems:
            raise forms.ValidationError(problems)
        return mapping

    # Blank JSON boxes mean "the default": store {} rather than null. The GraphQL mapping itself is checked with
    # graphql-core by X3Connection.clean, each problem next to the field it concerns.
    def clean_soap_mapping(self):
        return self.cleaned_data.get("soap_mapping") or {}

    def clean_graphql_variables(self):
        return self.cleaned_data.get("graphql_variables") or {}

    def clean_chart_query(self):
        return self.cleaned_data.get("chart_query") or {}

    def clean_graphql_mapping(self):
        return self.cleaned_data.get("graphql_mapping") or {}


class AlertSettingsForm(SecretFieldsForm):
    """The chat webhook URL is write-only like the other secrets; a box removes it."""

    secret_fields = ("webhook_url",)
    remove_webhook_url = forms.BooleanField(label="Remove the chat webhook URL", required=False)

    class Meta:
        model = AlertSettings
        fields = ("enabled", "email_recipients", "webhook_url", "webhook_silence_hours")
        widgets = {"email_recipients": forms.Textarea(attrs={"rows": 3, "cols": 60})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The whole URL is the secret (its end included): show only its host.
        current = self.instance.webhook_url if self.instance.pk else ""
        state = f"set ({urlsplit(current).netloc})" if current else "not set"
        self.fields["webhook_url"].help_text = (
            f'https URL that accepts a JSON POST {{"text": …}} (Slack, Google Chat, Mattermost, …). Currently '
            f"{state}. Leave blank to keep it; type a new value to replace it."
        )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("remove_webhook_url"):
            cleaned["webhook_url"] = ""
        return cleaned
