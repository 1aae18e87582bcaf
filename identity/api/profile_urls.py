"""/api/v1/auth/profile/ and activity/: the caller's own."""

from django.urls import path

from identity.api import profile_views

urlpatterns = [
    # The name is part of the forced-password-change rule (identity.authentication): GET of
    # "auth-profile" still answers while a change is pending.
    path("profile/", profile_views.ProfileView.as_view(), name="auth-profile"),
    path("activity/", profile_views.ActivityView.as_view(), name="auth-activity"),
]
