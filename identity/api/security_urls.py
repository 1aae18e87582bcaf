"""/api/v1/security/ on tenant hosts: IP blocks."""

from django.urls import path

from identity.api import security_views

urlpatterns = [
    path("ip-blocks/", security_views.IpBlockListView.as_view(), name="security-ip-blocks"),
    # <str:>: a malformed id is answered 404 by the view, after authentication.
    path("ip-blocks/<str:block_id>/", security_views.IpBlockDetailView.as_view(), name="security-ip-block"),
]
