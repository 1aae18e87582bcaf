"""Tenant admins' email templates: /api/v1/notifications/templates/ on tenant hosts.

Overrides reach every user's inbox under the tenant's name, so only those who hold every
permission tenant-wide (`*`: the Admin role) may read or change them.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ErrorCode, ProblemError
from notifications.api.serializers import (
    EmailTemplateListSerializer,
    EmailTemplateOverrideSerializer,
    EmailTemplateSerializer,
)
from notifications.kinds import Kind
from notifications.selectors import EmailTemplate, email_template_get, email_template_list
from notifications.services import email_template_override_delete, email_template_override_set
from rbac.catalog import ALL_PERMISSIONS
from rbac.permissions import HasPermission, MethodPermissions

TAGS = ["notifications"]
TENANT_ADMIN = HasPermission(ALL_PERMISSIONS)
KIND = OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, description="The kind of email.")
REFUSALS = {
    400: OpenApiResponse(description="invalid_request, with `errors` for `subject` and `body` (problem details)"),
    403: OpenApiResponse(description="permission_denied"),
    404: OpenApiResponse(description="not_found: no such kind, or one tenants cannot override"),
}


class EmailTemplateListView(APIView):
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": TENANT_ADMIN}

    @extend_schema(
        operation_id="notifications_templates_list",
        responses={200: EmailTemplateListSerializer, 403: REFUSALS[403]},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        """Every kind of email tenants may override, with its placeholders, its defaults and
        this tenant's override."""
        return Response({"results": EmailTemplateSerializer(email_template_list(), many=True).data})


class EmailTemplateDetailView(APIView):
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": TENANT_ADMIN, "PUT": TENANT_ADMIN, "DELETE": TENANT_ADMIN}

    @staticmethod
    def template(kind: str) -> EmailTemplate:
        template = email_template_get(kind)
        if template is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such kind of email, or not one tenants can override.")
        return template

    @extend_schema(parameters=[KIND], responses={200: EmailTemplateSerializer, **REFUSALS}, tags=TAGS)
    def get(self, request: Request, kind: str) -> Response:
        return Response(EmailTemplateSerializer(self.template(kind)).data)

    @extend_schema(
        parameters=[KIND],
        request=EmailTemplateOverrideSerializer,
        responses={200: EmailTemplateSerializer, **REFUSALS},
        tags=TAGS,
    )
    def put(self, request: Request, kind: str) -> Response:
        """Set this tenant's subject and/or text (plain text with `{placeholder}`s; an empty
        one keeps the default). The HTML part is made from the text, escaped."""
        self.template(kind)
        serializer = EmailTemplateOverrideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        email_template_override_set(kind=Kind(kind), subject=data["subject"], body=data["body"], actor=request.user)
        return Response(EmailTemplateSerializer(self.template(kind)).data)

    @extend_schema(parameters=[KIND], responses={204: None, **REFUSALS}, tags=TAGS)
    def delete(self, request: Request, kind: str) -> Response:
        """Go back to the default subject and text (204 whether or not there was an override)."""
        self.template(kind)
        email_template_override_delete(kind=Kind(kind), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
