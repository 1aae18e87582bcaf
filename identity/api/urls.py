from django.urls import path

from identity.api import views

urlpatterns = [
    path("token/", views.TokenObtainView.as_view(), name="auth-token"),
    path("token/refresh/", views.TokenRefreshView.as_view(), name="auth-token-refresh"),
    path("logout/", views.LogoutView.as_view(), name="auth-logout"),
    path("whoami/", views.WhoAmIView.as_view(), name="auth-whoami"),
]
