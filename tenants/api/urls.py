from django.urls import path

from tenants.api import views

urlpatterns = [
    path("tenants/", views.TenantListCreateView.as_view(), name="platform-tenant-list"),
    path("tenants/<str:slug>/", views.TenantDetailView.as_view(), name="platform-tenant-detail"),
    path("plans/", views.PlanListCreateView.as_view(), name="platform-plan-list"),
    path("plans/<str:code>/", views.PlanDetailView.as_view(), name="platform-plan-detail"),
]
