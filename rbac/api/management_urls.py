"""/api/v1/ on tenant hosts: the permission catalog, roles, branches and users' role assignments."""

from django.urls import path

from rbac.api import management_views as views

urlpatterns = [
    path("permissions/", views.PermissionListView.as_view(), name="permission-list"),
    path("permissions/<str:code>/", views.PermissionDetailView.as_view(), name="permission-detail"),
    path("roles/", views.RoleListView.as_view(), name="role-list"),
    path("roles/<int:pk>/", views.RoleDetailView.as_view(), name="role-detail"),
    path("branches/", views.BranchListView.as_view(), name="branch-list"),
    path("branches/<int:pk>/", views.BranchDetailView.as_view(), name="branch-detail"),
    # <str:>, not <uuid:>, as in the users API: a malformed id is answered 404 by the view,
    # after authentication, so an anonymous caller learns nothing from the shape of a path.
    path("users/<str:user_id>/roles/", views.UserRoleListView.as_view(), name="user-role-list"),
    path(
        "users/<str:user_id>/roles/<int:assignment_id>/",
        views.UserRoleDetailView.as_view(),
        name="user-role-detail",
    ),
]
