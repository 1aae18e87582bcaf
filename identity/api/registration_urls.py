"""/api/v1/auth/register/ and verify-email/ (self-registration)."""

from django.urls import path

from identity.api import registration_views

urlpatterns = [
    path("register/", registration_views.RegisterView.as_view(), name="auth-register"),
    path(
        "verify-email/<str:uidb64>/<str:token>/",
        registration_views.VerifyEmailView.as_view(),
        name="auth-verify-email",
    ),
]
