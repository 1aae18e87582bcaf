"""/api/v1/authz/...: the permission-check API (single and batch)."""

from django.urls import path

from rbac.api import authz_views

urlpatterns = [
    path("authz/check/", authz_views.AuthzCheckView.as_view(), name="authz-check"),
    path("authz/check/batch/", authz_views.AuthzCheckBatchView.as_view(), name="authz-check-batch"),
]
