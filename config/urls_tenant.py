"""URLs of a tenant's host (<slug>.IDP_BASE_DOMAIN or its custom domain)."""

from django.urls import include, path

from console.sites import tenant_console
from core.urls import api_not_found, common_urlpatterns
from core.views import PingView

urlpatterns = [
    *common_urlpatterns("config.urls_tenant"),
    path("api/v1/users/", include("identity.api.users_urls")),
    path("api/v1/audit/", include("identity.api.audit_urls")),
    path("api/v1/security/", include("identity.api.security_urls")),
    path("api/v1/", include("rbac.api.urls")),
    path("api/v1/", include("sessions.api.admin_urls")),
    path("api/v1/", include("sessions.api.oauth_urls")),
    path("api/v1/notifications/", include("notifications.api.urls")),
    path("api/v1/ping/", PingView.as_view(), name="ping"),
    path("", include("identity.web_urls")),
    path("admin/", tenant_console.urls),
    *api_not_found,
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
