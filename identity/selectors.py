"""Reads for identity."""

import uuid
from collections.abc import Collection

from django.db.models import Q, QuerySet

from identity.models import LoginAttempt, User


def user_role_names(user: User) -> list[str]:
    """Role names for the `roles` claim (rbac holds the assignments)."""
    from rbac.selectors import user_role_names as assigned_role_names

    return assigned_role_names(user)


def user_list(
    *,
    is_active: bool | None = None,
    branch_id: str | None = None,
    search: str = "",
    within_branches: Collection[str] | None = None,
) -> QuerySet[User]:
    """The tenant's users (the current schema's: never another tenant's), filtered.

    `search` matches a part of the email, the full name or the employee id, in any case.
    `within_branches` (external ids) keeps only the users whose `branch_id` is one of them: what
    a holder of the permission at those branches only may see. None: the whole tenant.
    """
    users = User.objects.all().order_by("email", "id")
    if within_branches is not None:
        users = users.filter(branch_id__in=[branch for branch in within_branches if branch])
    if is_active is not None:
        users = users.filter(is_active=is_active)
    if branch_id is not None:
        users = users.filter(branch_id=branch_id)
    search = search.strip()
    if search:
        users = users.filter(
            Q(email__icontains=search) | Q(full_name__icontains=search) | Q(employee_id__icontains=search)
        )
    return users


def user_get(*, user_id: str | uuid.UUID, within_branches: Collection[str] | None = None) -> User | None:
    """One user of this tenant, or None for an unknown id and for text that is not a UUID
    (which must read as "not found", never reach the database as a bad cast).

    With `within_branches`, a user whose `branch_id` is not one of them is None too: to a
    holder of the permission at some branches only, other branches' users do not exist.
    """
    try:
        pk = user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))
    except ValueError:
        return None
    return user_list(within_branches=within_branches).filter(pk=pk).first()


def login_attempts_for(*, user: User) -> QuerySet[LoginAttempt]:
    """A user's own login attempts, newest first: the ones recorded against their account,
    failures with their email included. Attempts for an email that matched no user at the
    time belong to nobody and are only in the tenant-wide audit view."""
    return LoginAttempt.objects.filter(user=user).order_by("-timestamp", "-id")
