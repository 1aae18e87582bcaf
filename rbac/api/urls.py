"""/api/v1/ on tenant hosts: RBAC management, service clients, OAuth for services, and the
permission-check API. Each group keeps its routes in its own module."""

from django.urls import include, path

urlpatterns = [
    path("", include("rbac.api.management_urls")),
    path("", include("rbac.api.clients_urls")),
    path("", include("rbac.api.authz_urls")),
]
