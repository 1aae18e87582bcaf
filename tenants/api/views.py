"""Platform API (public host): tenants and plans, for platform operators only.

Every method of every view requires `IsPlatformOperator` (a superuser of the public schema,
on the public host); each view still lists its methods, like every other view (rbac.checks)."""

from typing import cast

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from identity.models import User
from rbac.permissions import MethodPermissions
from tenants import selectors, services
from tenants.api.serializers import (
    PlanSerializer,
    PlanUpdateSerializer,
    TenantCreateSerializer,
    TenantSerializer,
    TenantUpdateSerializer,
)
from tenants.models import Plan, Tenant
from tenants.permissions import IsPlatformOperator

OPERATOR = IsPlatformOperator()


class PlatformView(generics.GenericAPIView):
    permission_classes = [MethodPermissions]

    @property
    def actor(self) -> User:
        return cast(User, self.request.user)  # IsPlatformOperator admits only real users


class TenantListCreateView(PlatformView, generics.ListAPIView):
    serializer_class = TenantSerializer
    required_permissions = {"GET": OPERATOR, "POST": OPERATOR}

    def get_queryset(self) -> QuerySet[Tenant]:
        return selectors.tenant_list()

    @extend_schema(request=TenantCreateSerializer, responses={201: TenantSerializer})
    def post(self, request: Request) -> Response:
        serializer = TenantCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.tenant_create(**serializer.validated_data, actor=self.actor)
        tenant = selectors.tenant_get(slug=created.tenant.schema_name)
        body = TenantSerializer(tenant).data | {"admin": {"id": str(created.admin.pk), "email": created.admin.email}}
        return Response(body, status=status.HTTP_201_CREATED)


class TenantDetailView(PlatformView):
    serializer_class = TenantSerializer
    required_permissions = {"GET": OPERATOR, "PATCH": OPERATOR}

    def get_object(self) -> Tenant:
        tenant = selectors.tenant_get(slug=self.kwargs["slug"])
        if tenant is None:
            raise Http404
        return tenant

    def get(self, request: Request, slug: str) -> Response:
        return Response(TenantSerializer(self.get_object()).data)

    @extend_schema(request=TenantUpdateSerializer, responses={200: TenantSerializer})
    def patch(self, request: Request, slug: str) -> Response:
        tenant = self.get_object()
        serializer = TenantUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.tenant_update(tenant=tenant, actor=self.actor, **serializer.validated_data)
        return Response(TenantSerializer(selectors.tenant_get(slug=slug)).data)


class PlanListCreateView(PlatformView, generics.ListAPIView):
    serializer_class = PlanSerializer
    required_permissions = {"GET": OPERATOR, "POST": OPERATOR}

    def get_queryset(self) -> QuerySet[Plan]:
        return selectors.plan_list()

    @extend_schema(request=PlanSerializer, responses={201: PlanSerializer})
    def post(self, request: Request) -> Response:
        serializer = PlanSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        plan = services.plan_create(actor=self.actor, **serializer.validated_data)
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class PlanDetailView(PlatformView):
    serializer_class = PlanSerializer
    required_permissions = {"GET": OPERATOR, "PATCH": OPERATOR}

    def get_object(self) -> Plan:
        plan = selectors.plan_get(code=self.kwargs["code"])
        if plan is None:
            raise Http404
        return plan

    def get(self, request: Request, code: str) -> Response:
        return Response(PlanSerializer(self.get_object()).data)

    @extend_schema(request=PlanUpdateSerializer, responses={200: PlanSerializer})
    def patch(self, request: Request, code: str) -> Response:
        plan = self.get_object()
        serializer = PlanUpdateSerializer(plan, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        plan = services.plan_update(plan=plan, actor=self.actor, **serializer.validated_data)
        return Response(PlanSerializer(plan).data)
