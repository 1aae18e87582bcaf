"""Routes served on every host: health probes, the OpenAPI documents, discovery and login
(platform operators log in on the public host like any user on a tenant host)."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from core.views import LivenessView, ReadinessView, api_path_not_found
from identity.api.wellknown import JwksView, OpenIdConfigurationView


def common_urlpatterns(urlconf: str) -> list:
    # The schema is generated from the host's own URLconf: the public host documents the
    # platform API, a tenant host the tenant API.
    return [
        path("health/live/", LivenessView.as_view(), name="health-live"),
        path("health/ready/", ReadinessView.as_view(), name="health-ready"),
        path("api/schema/", SpectacularAPIView.as_view(urlconf=urlconf), name="schema"),
        # The split view serves Swagger UI's initialiser as a file (`?script`), so the page
        # needs no inline script under its Content-Security-Policy.
        path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
        path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
        path(".well-known/jwks.json", JwksView.as_view(), name="jwks"),
        path(".well-known/openid-configuration", OpenIdConfigurationView.as_view(), name="openid-configuration"),
        path("api/v1/auth/", include("identity.api.urls")),
        path("api/v1/", include("sessions.api.urls")),
    ]


# Last in each URLconf: an unknown API path is problem JSON even with DEBUG on, where
# Django would otherwise answer with its HTML debug page.
api_not_found = [re_path(r"^api/", api_path_not_found)]
