from django.contrib import admin
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from workspace import views as workspace

from . import metrics, views

admin.site.site_header = "BigCommerce → Sage X3 connector"
admin.site.site_title = "BC → X3 connector"
admin.site.index_title = "Operations"

urlpatterns = [
    path("webhooks/bigcommerce/<slug:tenant_slug>/", views.bigcommerce_webhook, name="bigcommerce-webhook"),
    # Without the slash too: APPEND_SLASH cannot redirect a POST (500 under DEBUG, a 301 that loses the delivery).
    path("webhooks/bigcommerce/<slug:tenant_slug>", views.bigcommerce_webhook),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", never_cache(require_GET(metrics.metrics_view)), name="metrics"),
    path("x3/oauth/<int:tenant_id>/start/", views.x3_oauth_start, name="x3-oauth-start"),
    path("x3/oauth/callback/", views.x3_oauth_callback, name="x3-oauth-callback"),
    path(
        "admin/workspace/dashboard/",
        admin.site.admin_view(workspace.dashboard_view),
        name="workspace-dashboard",
    ),
    path(
        "admin/workspace/reconciliation/",
        admin.site.admin_view(workspace.reconciliation_view),
        name="workspace-reconciliation",
    ),
    path(
        "admin/workspace/reconciliation/re-read/",
        admin.site.admin_view(workspace.reread_view),
        name="workspace-reread",
    ),
    path(
        "admin/workspace/reconciliation/tie-out/",
        admin.site.admin_view(workspace.tie_out_view),
        name="workspace-tie-out",
    ),
    path(
        "admin/workspace/reconciliation/channels/",
        admin.site.admin_view(workspace.refresh_channels_view),
        name="workspace-refresh-channels",
    ),
    path(
        "admin/workspace/trial-balance/",
        admin.site.admin_view(workspace.trial_balance_view),
        name="workspace-trial-balance",
    ),
    path("admin/", admin.site.urls),
]
