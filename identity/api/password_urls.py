"""/api/v1/auth/ password endpoints. The names are referenced by the forced-password-change
rule (identity.authentication.PASSWORD_CHANGE_EXEMPT): keep `auth-change-password`."""

from django.urls import URLPattern, path

from identity.api import password_views

urlpatterns: list[URLPattern] = [
    path("change-password/", password_views.PasswordChangeView.as_view(), name="auth-change-password"),
    path("password-reset/", password_views.PasswordResetRequestView.as_view(), name="auth-password-reset"),
    path(
        "password-reset/confirm/",
        password_views.PasswordResetConfirmView.as_view(),
        name="auth-password-reset-confirm",
    ),
]
