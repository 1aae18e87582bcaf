"""RBAC management on tenant hosts: /api/v1/permissions/, roles/, branches/ and
users/<id>/roles/.

Every view says what each method requires (`required_permissions`, judged by
rbac.permissions.MethodPermissions, the project's rbac.permissions.MethodPermissions). A
requirement with `anywhere=True` also admits holders of the code at some branch only (a
Manager at a branch); such a view then narrows what it shows and what it may touch to those
branches, and whatever lies outside reads as "not found", so one branch's users stay
invisible to another's managers. The services still decide the rest: where an assignment may
be made (403 permission_denied), that nobody grants more than they hold (403
privilege_escalation), and that the last admin stays (403 last_admin).

Every lookup runs in the request's tenant schema: another tenant's user, role, branch or
assignment is simply not found.
"""

from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ErrorCode, ProblemError
from identity.models import User
from identity.selectors import user_get
from rbac import services
from rbac.api.management_serializers import (
    BranchCreateSerializer,
    BranchSerializer,
    BranchUpdateSerializer,
    PermissionCodeCreateSerializer,
    PermissionCodeSerializer,
    RoleAssignmentCreateSerializer,
    RoleAssignmentSerializer,
    RoleCreateSerializer,
    RoleSerializer,
    RoleUpdateSerializer,
)
from rbac.catalog import Perm
from rbac.models import Branch, PermissionCode, Role, RoleAssignment
from rbac.permissions import HasPermission, MethodPermissions
from rbac.selectors import Scope, branch_list, effective_permissions, permission_list, role_list, user_assignments

TAGS = ["rbac"]
CODE = OpenApiParameter("code", OpenApiTypes.STR, OpenApiParameter.PATH, description="The permission code.")
ROLE_ID = OpenApiParameter("pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The role's id.")
BRANCH_ID = OpenApiParameter("pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The branch's id.")
USER_ID = OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The user's id.")
ASSIGNMENT_ID = OpenApiParameter(
    "assignment_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The role assignment's id."
)
REFUSALS = {
    400: OpenApiResponse(description="invalid_request, with `errors` per field (problem details)"),
    403: OpenApiResponse(description="permission_denied, privilege_escalation, last_admin or branch_cap_reached"),
    404: OpenApiResponse(description="not_found"),
}


def _not_found(what: str) -> ProblemError:
    return ProblemError(ErrorCode.NOT_FOUND, f"No such {what}.")


class RbacView(generics.GenericAPIView):
    # rbac.permissions.MethodPermissions: rbac.permissions.MethodPermissions that also lets a
    # method the view has no handler for (PUT) through to DRF's 405, where MethodPermissions
    # alone would call it a configuration error and answer 500.
    permission_classes = [MethodPermissions]
    required_permissions: dict[str, BasePermission]

    @property
    def actor(self) -> User:
        return cast(User, self.request.user)  # every requirement here admits only real users

    @property
    def tenant(self) -> Any:
        return self.request.tenant  # type: ignore[attr-defined]

    def reach(self) -> Scope:
        """Where the caller holds the code this method requires: what the request may see or
        touch. All of the tenant for a tenant-wide holder; their branches for a branch holder."""
        method = "GET" if self.request.method in ("HEAD", "OPTIONS") else str(self.request.method)
        requirement = self.required_permissions[method]
        if not isinstance(requirement, HasPermission):
            raise ImproperlyConfigured(f"{type(self).__name__} narrows by scope: {method} needs a HasPermission")
        return effective_permissions(self.actor.pk).scope(requirement.code)

    def is_schema_generation(self) -> bool:
        return getattr(self, "swagger_fake_view", False)


# --- permission codes --------------------------------------------------------------------------


@extend_schema_view(get=extend_schema(tags=TAGS, summary="The permission catalog"))
class PermissionListView(RbacView, generics.ListAPIView):
    """The codes roles may hold: built-in ones and the tenant's own. `*` is ALL_PERMISSIONS."""

    serializer_class = PermissionCodeSerializer
    required_permissions = {
        "GET": HasPermission(Perm.PERMISSIONS_VIEW, anywhere=True),
        "POST": HasPermission(Perm.PERMISSIONS_CREATE),
    }

    def get_queryset(self) -> QuerySet[PermissionCode]:
        return permission_list()

    @extend_schema(
        request=PermissionCodeCreateSerializer, responses={201: PermissionCodeSerializer, **REFUSALS}, tags=TAGS
    )
    def post(self, request: Request) -> Response:
        """Add a tenant code, `resource.action` in lower case."""
        serializer = PermissionCodeCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        permission = services.permission_create(actor=self.actor, **serializer.validated_data)
        return Response(PermissionCodeSerializer(permission).data, status=status.HTTP_201_CREATED)


class PermissionDetailView(RbacView):
    serializer_class = PermissionCodeSerializer
    required_permissions = {
        "GET": HasPermission(Perm.PERMISSIONS_VIEW, anywhere=True),
        "DELETE": HasPermission(Perm.PERMISSIONS_DELETE),
    }

    def get_object(self) -> PermissionCode:
        permission = permission_list().filter(code=self.kwargs["code"]).first()
        if permission is None:
            raise _not_found("permission code")
        return permission

    @extend_schema(parameters=[CODE], responses={200: PermissionCodeSerializer, 404: REFUSALS[404]}, tags=TAGS)
    def get(self, request: Request, code: str) -> Response:
        return Response(PermissionCodeSerializer(self.get_object()).data)

    @extend_schema(parameters=[CODE], responses={204: None, **REFUSALS}, tags=TAGS)
    def delete(self, request: Request, code: str) -> Response:
        """Delete a tenant code (built-in ones: 403); roles holding it lose it at once."""
        services.permission_delete(permission=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- roles -----------------------------------------------------------------------------------


@extend_schema_view(get=extend_schema(tags=TAGS, summary="System roles and the tenant's roles"))
class RoleListView(RbacView, generics.ListAPIView):
    """System roles (Admin, Manager, Employee, Auditor) and the tenant's own roles."""

    serializer_class = RoleSerializer
    required_permissions = {
        "GET": HasPermission(Perm.ROLES_VIEW, anywhere=True),
        "POST": HasPermission(Perm.ROLES_CREATE),
    }

    def get_queryset(self) -> QuerySet[Role]:
        return role_list()

    @extend_schema(request=RoleCreateSerializer, responses={201: RoleSerializer, **REFUSALS}, tags=TAGS)
    def post(self, request: Request) -> Response:
        """Create a role; the caller must hold every code they put in it."""
        serializer = RoleCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        role = services.role_create(actor=self.actor, **serializer.validated_data)
        return Response(RoleSerializer(role_list().get(pk=role.pk)).data, status=status.HTTP_201_CREATED)


class RoleDetailView(RbacView):
    serializer_class = RoleSerializer
    required_permissions = {
        "GET": HasPermission(Perm.ROLES_VIEW, anywhere=True),
        "PATCH": HasPermission(Perm.ROLES_EDIT),
        "DELETE": HasPermission(Perm.ROLES_DELETE),
    }

    def get_object(self) -> Role:
        role = role_list().filter(pk=self.kwargs["pk"]).first()
        if role is None:
            raise _not_found("role")
        return role

    @extend_schema(parameters=[ROLE_ID], responses={200: RoleSerializer, 404: REFUSALS[404]}, tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RoleSerializer(self.get_object()).data)

    @extend_schema(
        parameters=[ROLE_ID], request=RoleUpdateSerializer, responses={200: RoleSerializer, **REFUSALS}, tags=TAGS
    )
    def patch(self, request: Request, pk: int) -> Response:
        """Rename, describe or re-code a role (`permissions` replaces its codes). System roles
        keep their names; their codes change only where the tenant's policy allows, never
        Admin's."""
        role = self.get_object()
        serializer = RoleUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.role_update(role=role, actor=self.actor, tenant=self.tenant, **serializer.validated_data)
        return Response(RoleSerializer(role_list().get(pk=role.pk)).data)

    @extend_schema(parameters=[ROLE_ID], responses={204: None, **REFUSALS}, tags=TAGS)
    def delete(self, request: Request, pk: int) -> Response:
        """Delete a tenant role and every assignment of it (system roles: 403)."""
        services.role_delete(role=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- branches ------------------------------------------------------------------------------------


class BranchScopedView(RbacView):
    def branches_visible(self) -> QuerySet[Branch]:
        """All branches for a tenant-wide holder; a branch holder's own otherwise."""
        scope = self.reach()
        branches = branch_list()
        return branches if scope.everywhere else branches.filter(external_id__in=scope.branches)


@extend_schema_view(get=extend_schema(tags=TAGS, summary="Branches (a branch manager sees their own)"))
class BranchListView(BranchScopedView, generics.ListAPIView):
    serializer_class = BranchSerializer
    required_permissions = {
        "GET": HasPermission(Perm.BRANCHES_VIEW, anywhere=True),
        "POST": HasPermission(Perm.BRANCHES_CREATE),
    }

    def get_queryset(self) -> QuerySet[Branch]:
        if self.is_schema_generation():
            return Branch.objects.none()
        return self.branches_visible()

    @extend_schema(request=BranchCreateSerializer, responses={201: BranchSerializer, **REFUSALS}, tags=TAGS)
    def post(self, request: Request) -> Response:
        """Create a branch, within the plan's `max_branches` (403 branch_cap_reached)."""
        serializer = BranchCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        branch = services.branch_create(tenant=self.tenant, actor=self.actor, **serializer.validated_data)
        return Response(BranchSerializer(branch).data, status=status.HTTP_201_CREATED)


class BranchDetailView(BranchScopedView):
    serializer_class = BranchSerializer
    required_permissions = {
        "GET": HasPermission(Perm.BRANCHES_VIEW, anywhere=True),
        "PATCH": HasPermission(Perm.BRANCHES_EDIT),
        "DELETE": HasPermission(Perm.BRANCHES_DELETE),
    }

    def get_object(self) -> Branch:
        branch = self.branches_visible().filter(pk=self.kwargs["pk"]).first()
        if branch is None:
            raise _not_found("branch")
        return branch

    @extend_schema(parameters=[BRANCH_ID], responses={200: BranchSerializer, 404: REFUSALS[404]}, tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return Response(BranchSerializer(self.get_object()).data)

    @extend_schema(
        parameters=[BRANCH_ID], request=BranchUpdateSerializer, responses={200: BranchSerializer, **REFUSALS}, tags=TAGS
    )
    def patch(self, request: Request, pk: int) -> Response:
        branch = self.get_object()
        serializer = BranchUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        branch = services.branch_update(branch=branch, actor=self.actor, **serializer.validated_data)
        return Response(BranchSerializer(branch).data)

    @extend_schema(parameters=[BRANCH_ID], responses={204: None, **REFUSALS}, tags=TAGS)
    def delete(self, request: Request, pk: int) -> Response:
        """Delete a branch that no role assignment refers to (else 400)."""
        services.branch_delete(branch=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- a user's role assignments --------------------------------------------------------------------


class UserRolesView(RbacView):
    """Base of users/<id>/roles/: the user must be within the caller's reach for the method's
    code (tenant-wide holders reach everyone; a branch holder reaches the users whose
    `branch_id` is one of their branches). Anyone else reads as not found."""

    def target_user(self) -> User:
        # A malformed id is "not found" too, answered after authentication (users API alike).
        user = user_get(user_id=self.kwargs["user_id"])
        if user is not None:
            scope = self.reach()
            if scope.everywhere or (user.branch_id and user.branch_id in scope.branches):
                return user
        raise _not_found("user")


@extend_schema_view(get=extend_schema(parameters=[USER_ID], tags=TAGS, summary="A user's role assignments"))
class UserRoleListView(UserRolesView, generics.ListAPIView):
    serializer_class = RoleAssignmentSerializer
    required_permissions = {
        "GET": HasPermission(Perm.ROLES_VIEW, anywhere=True),
        "POST": HasPermission(Perm.ROLES_ASSIGN, anywhere=True),
    }

    def get_queryset(self) -> QuerySet[RoleAssignment]:
        if self.is_schema_generation():
            return RoleAssignment.objects.none()
        return user_assignments(self.target_user())

    @extend_schema(
        parameters=[USER_ID],
        request=RoleAssignmentCreateSerializer,
        responses={201: RoleAssignmentSerializer, **REFUSALS},
        tags=TAGS,
    )
    def post(self, request: Request, user_id: str) -> Response:
        """Assign a role tenant-wide, or at the branch with the given external id. Needs
        `roles.assign` where the assignment applies (403 permission_denied) and every code of
        the role there (403 privilege_escalation); nobody gives themselves `*`."""
        user = self.target_user()
        serializer = RoleAssignmentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        role = role_list().filter(pk=serializer.validated_data["role"]).first()
        if role is None:
            raise _not_found("role")
        branch = None
        if serializer.validated_data["branch"] is not None:
            branch = branch_list().filter(external_id=serializer.validated_data["branch"]).first()
            if branch is None:
                raise _not_found("branch")
        assignment = services.role_assign(user=user, role=role, branch=branch, actor=self.actor)
        body = RoleAssignmentSerializer(user_assignments(user).get(pk=assignment.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)


class UserRoleDetailView(UserRolesView):
    serializer_class = RoleAssignmentSerializer
    required_permissions = {
        "GET": HasPermission(Perm.ROLES_VIEW, anywhere=True),
        "DELETE": HasPermission(Perm.ROLES_ASSIGN, anywhere=True),
    }

    def get_object(self) -> RoleAssignment:
        assignment = user_assignments(self.target_user()).filter(pk=self.kwargs["assignment_id"]).first()
        if assignment is None:
            raise _not_found("role assignment")
        return assignment

    @extend_schema(
        parameters=[USER_ID, ASSIGNMENT_ID], responses={200: RoleAssignmentSerializer, 404: REFUSALS[404]}, tags=TAGS
    )
    def get(self, request: Request, user_id: str, assignment_id: int) -> Response:
        return Response(RoleAssignmentSerializer(self.get_object()).data)

    @extend_schema(parameters=[USER_ID, ASSIGNMENT_ID], responses={204: None, **REFUSALS}, tags=TAGS)
    def delete(self, request: Request, user_id: str, assignment_id: int) -> Response:
        """Remove an assignment: the same rules as giving it; the tenant's last admin keeps
        the Admin role (403 last_admin)."""
        services.role_unassign(assignment=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
