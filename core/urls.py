"""Routes served on every host: health probes and the OpenAPI documents."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from core.views import LivenessView, ReadinessView, api_path_not_found


def common_urlpatterns(urlconf: str) -> list:
    # The schema is generated from the host's own URLconf: the public host documents the
    # platform API, a tenant host the tenant API.
    return [
        path("health/live/", LivenessView.as_view(), name="health-live"),
        path("health/ready/", ReadinessView.as_view(), name="health-ready"),
        path("api/schema/", SpectacularAPIView.as_view(urlconf=urlconf), name="schema"),
        path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
        path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    ]


# Last in each URLconf: an unknown API path is problem JSON even with DEBUG on, where
# Django would otherwise answer with its HTML debug page.
api_not_found = [re_path(r"^api/", api_path_not_found)]
