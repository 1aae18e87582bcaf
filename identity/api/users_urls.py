"""/api/v1/users/ on tenant hosts: employees managed by tenant admins."""

from django.urls import path

from identity.api import users_views

urlpatterns = [
    path("", users_views.UserListCreateView.as_view(), name="user-list"),
    # <str:>, not <uuid:>: a malformed id is answered 404 by the view, after authentication,
    # so an anonymous caller learns nothing from the shape of a path.
    path("<str:user_id>/", users_views.UserDetailView.as_view(), name="user-detail"),
    path("<str:user_id>/set-password/", users_views.UserSetPasswordView.as_view(), name="user-set-password"),
    path("<str:user_id>/unlock/", users_views.UserUnlockView.as_view(), name="user-unlock"),
]
