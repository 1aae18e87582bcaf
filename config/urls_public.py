"""URLs of the public (platform) host: IDP_BASE_DOMAIN itself."""

from django.urls import include, path

from console.sites import platform_console
from core.urls import api_not_found, common_urlpatterns

urlpatterns = [
    *common_urlpatterns("config.urls_public"),
    path("api/v1/platform/", include("tenants.api.urls")),
    path("", include("identity.web_urls")),  # operators' password reset links
    path("admin/", platform_console.urls),
    *api_not_found,
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
