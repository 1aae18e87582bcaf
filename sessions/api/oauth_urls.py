"""/api/v1/oauth/introspect/ (RFC 7662) and /api/v1/oauth/revoke/ (RFC 7009), for service
clients on tenant hosts. The token endpoint beside them is rbac's (rbac.api.clients_urls)."""

from django.urls import path

from sessions.api import oauth_views

urlpatterns = [
    path("oauth/introspect/", oauth_views.IntrospectView.as_view(), name="oauth-introspect"),
    path("oauth/revoke/", oauth_views.RevokeView.as_view(), name="oauth-revoke"),
]
