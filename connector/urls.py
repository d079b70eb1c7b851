from django.contrib import admin
from django.urls import path

from workspace import views as workspace

from . import views

admin.site.site_header = "BigCommerce → Sage X3 connector"
admin.site.site_title = "BC → X3 connector"
admin.site.index_title = "Operations"

urlpatterns = [
    path("webhooks/bigcommerce/<slug:tenant_slug>/", views.bigcommerce_webhook, name="bigcommerce-webhook"),
    path("healthz", views.healthz, name="healthz"),
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
        "admin/workspace/trial-balance/",
        admin.site.admin_view(workspace.trial_balance_view),
        name="workspace-trial-balance",
    ),
    path("admin/", admin.site.urls),
]
