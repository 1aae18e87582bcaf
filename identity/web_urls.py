"""Small server-rendered pages that emailed links open on the tenant's host."""

from django.urls import URLPattern, path

from identity.web_passwords import reset_password_page
from identity.web_registration import verify_email_page

urlpatterns: list[URLPattern] = [
    path("verify-email/<str:uidb64>/<str:token>/", verify_email_page, name="web-verify-email"),
    path("reset-password/", reset_password_page, name="web-reset-password"),
]
