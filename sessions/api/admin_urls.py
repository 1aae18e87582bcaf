"""/api/v1/users/<id>/sessions/...: a user's sessions, for those who manage the user (tenant hosts)."""

from django.urls import path

from sessions.api import admin_views

urlpatterns = [
    # <str:>, not <uuid:>: a malformed id is answered 404 by the view, after authentication,
    # so an anonymous caller learns nothing from the shape of a path (as in the users API).
    path("users/<str:user_id>/sessions/", admin_views.UserSessionListView.as_view(), name="user-sessions"),
    path(
        "users/<str:user_id>/sessions/<str:session_id>/",
        admin_views.UserSessionDetailView.as_view(),
        name="user-session-detail",
    ),
]
