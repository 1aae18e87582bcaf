"""Small server-rendered pages that emailed links open on the tenant's host."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
