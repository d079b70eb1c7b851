from django.contrib import admin
from django.urls import path

from . import views

admin.site.site_header = "BigCommerce → Sage X3 connector"
admin.site.site_title = "BC → X3 connector"
admin.site.index_title = "Operations"

urlpatterns = [
    path("webhooks/bigcommerce/<slug:tenant_slug>/", views.bigcommerce_webhook, name="bigcommerce-webhook"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
