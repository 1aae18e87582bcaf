"""IP blocks: /api/v1/security/ip-blocks/ on tenant hosts.

Reading needs `audit.view` tenant-wide (blocks are about the whole tenant, not a branch:
Admin and Auditor). Lifting (`DELETE`) needs `users.edit` tenant-wide (Admin): it is the
unlock of an address, as `users/<id>/unlock/` is the unlock of an account, and a branch
manager does not decide for the whole tenant.
"""

from typing import Any, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ErrorCode, ProblemError
from identity import audit_selectors
from identity.models import IpBlock, User
from identity.services import security as security_services
from rbac.catalog import Perm
from rbac.permissions import HasPermission, MethodPermissions

VIEW = HasPermission(Perm.AUDIT_VIEW)
LIFT = HasPermission(Perm.USERS_EDIT)
BLOCK_ID = OpenApiParameter("block_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The block's id.")


class IpBlockSerializer(serializers.ModelSerializer):
    active = serializers.SerializerMethodField(help_text="Whether the block is in force now.")
    lifted_by = serializers.UUIDField(source="lifted_by_id", allow_null=True, help_text="The admin who lifted it.")

    class Meta:
        model = IpBlock
        fields = ["id", "ip", "reason", "data", "created_at", "expires_at", "lifted_at", "lifted_by", "active"]

    def get_active(self, block: IpBlock) -> bool:
        return block.is_active()


class IpBlockListQuerySerializer(serializers.Serializer):
    include_inactive = serializers.BooleanField(
        required=False, default=False, help_text="Add expired and lifted blocks."
    )


class IpBlockListView(generics.ListAPIView):
    """The tenant's IP blocks in force, newest first (`include_inactive=true` adds the rest)."""

    permission_classes = [MethodPermissions]
    required_permissions = {"GET": VIEW}
    serializer_class = IpBlockSerializer

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no real request
            return IpBlock.objects.none()
        query = IpBlockListQuerySerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        return audit_selectors.ip_block_list(include_inactive=query.validated_data["include_inactive"])

    @extend_schema(parameters=[IpBlockListQuerySerializer], tags=["security"])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class IpBlockDetailView(generics.GenericAPIView):
    """Read one block, or lift it."""

    permission_classes = [MethodPermissions]
    required_permissions = {"GET": VIEW, "DELETE": LIFT}
    serializer_class = IpBlockSerializer

    def get_object(self) -> IpBlock:
        block = audit_selectors.ip_block_get(block_id=self.kwargs["block_id"])
        if block is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such IP block.")
        return block

    @extend_schema(
        parameters=[BLOCK_ID],
        responses={200: IpBlockSerializer, 404: OpenApiResponse(description="not_found")},
        tags=["security"],
    )
    def get(self, request: Request, block_id: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        parameters=[BLOCK_ID],
        responses={
            204: OpenApiResponse(description="Lifted (or no longer in force): the address may log in again."),
            403: OpenApiResponse(description="permission_denied: users.edit is not held tenant-wide"),
            404: OpenApiResponse(description="not_found"),
        },
        tags=["security"],
    )
    def delete(self, request: Request, block_id: str) -> Response:
        security_services.ip_block_lift(block=self.get_object(), actor=cast(User, request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)
