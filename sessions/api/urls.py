from django.urls import path

from sessions.api import views

urlpatterns = [
    path("sessions/", views.OwnSessionListView.as_view(), name="sessions-own"),
    path("sessions/revoke-all/", views.OwnSessionRevokeAllView.as_view(), name="sessions-revoke-all"),
    path("sessions/<str:session_id>/", views.OwnSessionDetailView.as_view(), name="sessions-own-detail"),
    # users/<id>/sessions/ and oauth/introspect|revoke/ are tenant-host only: config/urls_tenant.py
]
