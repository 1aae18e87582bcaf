"""/api/v1/users/ on tenant hosts: employees managed by tenant admins."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
