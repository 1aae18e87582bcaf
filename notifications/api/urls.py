"""/api/v1/notifications/ on tenant hosts."""

from django.urls import path

from notifications.api import views

urlpatterns = [
    path("templates/", views.EmailTemplateListView.as_view(), name="email-template-list"),
    path("templates/<str:kind>/", views.EmailTemplateDetailView.as_view(), name="email-template-detail"),
]
