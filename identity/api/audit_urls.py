"""/api/v1/audit/ on tenant hosts: the audit trail and login attempts."""

from django.urls import path

from identity.api import audit_views

urlpatterns = [
    path("events/", audit_views.AuditEventListView.as_view(), name="audit-events"),
    path("login-attempts/", audit_views.LoginAttemptListView.as_view(), name="audit-login-attempts"),
]
