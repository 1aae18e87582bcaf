"""/api/v1/service-clients/... (tenant admins) and /api/v1/oauth/token/ (service clients)."""

from django.urls import path

from rbac.api import clients_views

urlpatterns = [
    path("service-clients/", clients_views.ServiceClientListCreateView.as_view(), name="service-client-list"),
    path(
        "service-clients/<str:client_id>/",
        clients_views.ServiceClientDetailView.as_view(),
        name="service-client-detail",
    ),
    path("oauth/token/", clients_views.ServiceTokenView.as_view(), name="oauth-token"),
]
