"""/api/v1/auth/ on every host. Each group of endpoints keeps its routes in its own module."""

from django.urls import include, path

from identity.api import views

urlpatterns = [
    path("token/", views.TokenObtainView.as_view(), name="auth-token"),
    path("token/refresh/", views.TokenRefreshView.as_view(), name="auth-token-refresh"),
    path("logout/", views.LogoutView.as_view(), name="auth-logout"),
    path("whoami/", views.WhoAmIView.as_view(), name="auth-whoami"),
    path("", include("identity.api.password_urls")),
    path("", include("identity.api.registration_urls")),
    path("", include("identity.api.profile_urls")),
]
