"""Writes for users: creation, updates, deactivation, passwords set by admins, unlocks.

Who may do what to whom (when an `actor` is given; None is the system itself):
- the actor needs the permission code (`users.create`, `users.edit`, `users.delete`) where the
  user works: tenant-wide, or at the branch whose external id is the user's `branch_id`
  (403 permission_denied otherwise; a user without a branch is reached tenant-wide only);
- and, to act on an existing user, must hold there every permission that user holds
  anywhere (rbac.catalog.covers): nobody edits, resets the password of, unlocks or deactivates
  someone above them, since each of those can hand them the other's account or deny it to
  its owner (403 privilege_escalation).
The API answers "not found" before these for users the caller cannot even see.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files import File
from django.core.mail.message import sanitize_address
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ErrorCode, ProblemError, invalid_request
from core.tenancy import current_schema
from core.types import UNSET, Unset
from identity.models import User, kra_pin_validator, normalize_email, picture_upload_to
from identity.passwords import password_generate, password_validate
from identity.pictures import picture_check
from identity.services.audit import audit_record
from identity.services.login import user_unlock
from notifications.kinds import Kind
from notifications.services import email_kind_send, email_time
from rbac.catalog import ADMIN, ALL_PERMISSIONS, Perm, covers
from rbac.models import Branch, PermissionCode, Role
from rbac.selectors import EffectivePermissions, effective_permissions_compute
from rbac.services import rbac_changed, role_assign, user_default_role_assign
from sessions.models import EndReason
from sessions.services import user_sessions_end
from tenants.models import Tenant


@transaction.atomic
def tenant_admin_create(
    *, email: str, password: str | None, full_name: str, password_rules: dict[str, Any], actor: User | None = None
) -> tuple[User, str | None]:
    """Create a tenant's first admin in the current (tenant) schema.

    Returns the user and the generated password when none was given (to be emailed, never
    logged or returned by the API). A generated password must be changed at first login;
    an operator-chosen one need not be.
    """
    generated = None
    if password is None:
        generated = password = password_generate(password_rules)
    else:
        password_validate(password, rules=password_rules, field="admin_password")
    user = User.objects.create_user(
        email=normalize_email(email),
        password=password,
        full_name=full_name,
        is_staff=True,
        is_tenant_admin=True,
        must_change_password=generated is not None,
    )
    audit_record(type="user.created", actor=actor, target=user, data={"email": user.email, "tenant_admin": True})
    role_assign(user=user, role=Role.objects.get(name=ADMIN), branch=None, actor=None)
    return user, generated


def user_cap_check(*, tenant: Any) -> None:
    """Refuse a new account past the plan's `max_users` (403 user_cap_reached).

    Active users and pending registrations count; deactivated users do not. The tenant's
    row is locked first, so two creations racing for the last seat cannot both win. Call
    inside the transaction that creates the user.
    """
    # of=("self",): only the tenant row is locked (the plan join is nullable).
    locked = Tenant.objects.select_for_update(of=("self",)).select_related("plan").get(pk=tenant.pk)
    if locked.plan is None:
        return  # the platform's own schema has no plan and no cap
    counted = User.objects.filter(Q(is_active=True) | Q(deactivated_at__isnull=True, email_verified_at__isnull=True))
    if counted.count() >= locked.plan.max_users:
        raise ProblemError(ErrorCode.USER_CAP_REACHED, f"The plan allows {locked.plan.max_users} users.")


# --- who may manage whom -------------------------------------------------------------------


def _reach_check(held: EffectivePermissions, *, code: str, branch_id: str) -> None:
    """403 permission_denied unless `held` has `code` tenant-wide or at branch `branch_id`."""
    scope = held.scope(code)
    if not (scope.everywhere or (branch_id and branch_id in scope.branches)):
        where = f"branch {branch_id}" if branch_id else "users without a branch"
        raise ProblemError(ErrorCode.PERMISSION_DENIED, f"You may not do {code} for {where}.")


def _codes_held_by(user: User) -> set[str]:
    """Every code the user holds, tenant-wide or at any branch. The tenant admin flag counts
    as `*` too: it follows the Admin role, and a user who has it is never anyone's junior."""
    codes = set(PermissionCode.objects.filter(roles__assignments__user=user).values_list("code", flat=True))
    if user.is_tenant_admin:
        codes.add(ALL_PERMISSIONS)
    return codes


def user_manage_check(*, actor: User, user: User, code: str) -> None:
    """May `actor` do `code` (`users.edit`, `users.delete`) to `user`? Refuses with 403
    permission_denied when the actor lacks `code` where the user works (the user's branch),
    and 403 privilege_escalation when the user holds a permission the actor does not hold
    there. Read from PostgreSQL, not the permission cache, like rbac's own refusals."""
    held = effective_permissions_compute(actor.pk)
    _reach_check(held, code=code, branch_id=user.branch_id)
    holdings = held.held_at(user.branch_id or None)
    above = sorted(held_code for held_code in _codes_held_by(user) if not any(covers(h, held_code) for h in holdings))
    if above:
        raise ProblemError(
            ErrorCode.PRIVILEGE_ESCALATION,
            "You cannot manage a user who holds permissions you do not hold.",
            extra={"not_held": above},
        )


# --- employees managed by tenant admins, and the user's own profile ----------------------------

EMAIL_TAKEN = "A user with this email already exists."


@dataclass(frozen=True)
class RoleGrant:
    """A role to give a new employee: the role's id, tenant-wide (`branch` None) or at the
    branch with this external id."""

    role: int
    branch: str | None = None


def _role_grants_resolve(grants: Sequence[RoleGrant]) -> list[tuple[Role, Branch | None]]:
    """The roles and branches named, or 400 invalid_request (errors.roles) naming what is
    unknown or repeated. Nothing is written before this passes."""
    keys = [(grant.role, grant.branch) for grant in grants]
    if len(set(keys)) != len(keys):
        raise invalid_request({"roles": ["Each role may be given once per branch (or once tenant-wide)."]})
    roles = Role.objects.in_bulk({grant.role for grant in grants})
    branches = Branch.objects.in_bulk({grant.branch for grant in grants if grant.branch}, field_name="external_id")
    problems = [f"Unknown role: {role_id}." for role_id in sorted({g.role for g in grants} - set(roles))]
    unknown_branches = sorted({g.branch for g in grants if g.branch} - set(branches))
    problems += [f"Unknown branch: {branch}." for branch in unknown_branches]
    if problems:
        raise invalid_request({"roles": problems})
    return [(roles[grant.role], branches[grant.branch] if grant.branch else None) for grant in grants]


def _email_checked(email: str, *, exclude: User | None = None) -> str:
    """The normalised address, refused (400, errors.email) unless it is one an email can be
    sent to and no other user of this tenant has it in any case.

    The address is also put through the function the mail backend builds the envelope
    with: one it could not even address is refused now, to the admin, rather than after
    commit, when the welcome email goes out and nobody would see the failure.
    """
    normalized = normalize_email(email)
    try:
        validate_email(normalized)
        sanitize_address(normalized, settings.DEFAULT_CHARSET)
    except (DjangoValidationError, ValueError) as exc:
        raise invalid_request({"email": ["Enter a valid email address."]}) from exc
    taken = User.objects.filter(email__iexact=normalized)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        raise invalid_request({"email": [EMAIL_TAKEN]})
    return normalized


def _kra_pin_checked(kra_pin: str) -> str:
    kra_pin = kra_pin.strip().upper()
    if kra_pin:
        try:
            kra_pin_validator(kra_pin)
        except DjangoValidationError as exc:
            raise invalid_request({"kra_pin": list(exc.messages)}) from exc
    return kra_pin


def _user_save(user: User, fields: list[str]) -> None:
    # The unique index is the last word on emails: a concurrent write that passed the same
    # check first makes this one fail, and that is still a 400 naming the field, not a 500.
    try:
        with transaction.atomic():
            user.save(update_fields=[*fields, "updated_at"])
    except IntegrityError as exc:
        raise invalid_request({"email": [EMAIL_TAKEN]}) from exc


def _changes_apply(*, user: User, changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Set the fields that really change; returns {field: {"before": ..., "after": ...}}."""
    changed = {
        field: {"before": getattr(user, field), "after": value}
        for field, value in changes.items()
        if getattr(user, field) != value
    }
    for field, change in changed.items():
        setattr(user, field, change["after"])
    return changed


@transaction.atomic
def user_create(
    *,
    tenant: Tenant,
    actor: User | None,
    email: str,
    full_name: str,
    phone: str = "",
    address: str = "",
    employee_id: str = "",
    kra_pin: str = "",
    branch_id: str = "",
    restaurant_id: str = "",
    roles: Sequence[RoleGrant] | None = None,
    temporary_password: str | None = None,
) -> User:
    """Create an employee with a generated password they must change at first login.

    The password is made with the tenant's policy and goes only into the welcome email, sent
    after commit: it is never returned, logged or audited, and a creation that rolls back
    sends nothing. The plan's user cap is checked first, under the tenant row's lock, so
    creations in one tenant run one at a time and the email check below cannot race another
    creation.

    An actor needs `users.create` tenant-wide or at the new user's `branch_id` (403
    permission_denied). `roles` are assigned by rbac.services.role_assign with the actor, so
    its rules apply (`roles.assign` where each applies, nothing above what the actor holds);
    a refusal undoes the whole creation. Without `roles` (absent or empty) the user gets the
    tenant's default role (policy `registration.default_role`).

    `temporary_password` is for a caller that shows the password once to the admin who
    creates the user (the admin console): it makes one with identity.passwords.password_generate
    and passes it here; it is checked against the policy all the same. None: made here.
    """
    if actor is not None:
        _reach_check(effective_permissions_compute(actor.pk), code=Perm.USERS_CREATE, branch_id=branch_id)
    user_cap_check(tenant=tenant)
    email = _email_checked(email)
    kra_pin = _kra_pin_checked(kra_pin)
    grants = _role_grants_resolve(roles or [])
    rules = tenant.effective_policy["password"]
    if temporary_password is None:
        password = password_generate(rules)
    else:
        password_validate(temporary_password, rules=rules, field="temporary_password")
        password = temporary_password
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email=email,
                password=password,
                full_name=full_name,
                phone=phone,
                address=address,
                employee_id=employee_id,
                kra_pin=kra_pin,
                branch_id=branch_id,
                restaurant_id=restaurant_id,
                must_change_password=True,
            )
    except IntegrityError as exc:
        raise invalid_request({"email": [EMAIL_TAKEN]}) from exc
    audit_record(
        type="user.created",
        actor=actor,
        target=user,
        data={
            "email": user.email,
            "full_name": user.full_name,
            "employee_id": user.employee_id,
            "branch_id": user.branch_id,
            "restaurant_id": user.restaurant_id,
            "must_change_password": True,
        },
    )
    for role, branch in grants:
        role_assign(user=user, role=role, branch=branch, actor=actor)
    if not grants:
        # A creator who holds users.create only at branches (a branch manager) gives the
        # default role at the new user's branch: never more reach than the creator has.
        scoped = actor is not None and not effective_permissions_compute(actor.pk).scope(Perm.USERS_CREATE).everywhere
        branch = Branch.objects.filter(external_id=user.branch_id).first() if scoped and user.branch_id else None
        user_default_role_assign(user=user, tenant=tenant, branch=branch)
    _welcome_email_send(tenant=tenant, user=user, password=password)
    return user


def _welcome_email_send(*, tenant: Tenant, user: User, password: str) -> None:
    email_kind_send(
        kind=Kind.EMPLOYEE_WELCOME,
        to=user.email,
        tenant=tenant,
        context={"user_name": user.full_name, "temporary_password": password},
    )


@transaction.atomic
def user_update(
    *,
    user: User,
    actor: User | None,
    email: str | None = None,
    full_name: str | None = None,
    phone: str | None = None,
    address: str | None = None,
    employee_id: str | None = None,
    kra_pin: str | None = None,
    branch_id: str | None = None,
    restaurant_id: str | None = None,
) -> User:
    """An admin's change to a user's profile and employee fields (None: left as it is).

    Access flags (`is_tenant_admin`, `must_change_password`, `is_active`) are not changed
    here: each has its own action with its own rules and audit event. The audit row lists
    the fields that changed, before and after; nothing is written when nothing changed.

    An actor needs to manage the user (`users.edit`, user_manage_check), and to move them to
    another branch needs `users.edit` at that branch too (403 permission_denied): nobody
    hands a user to a branch they do not manage, or takes one out of their reach.
    """
    user = User.objects.select_for_update().get(pk=user.pk)
    if actor is not None:
        user_manage_check(actor=actor, user=user, code=Perm.USERS_EDIT)
        if branch_id is not None and branch_id != user.branch_id:
            _reach_check(effective_permissions_compute(actor.pk), code=Perm.USERS_EDIT, branch_id=branch_id)
    given = {
        "email": email,
        "full_name": full_name,
        "phone": phone,
        "address": address,
        "employee_id": employee_id,
        "kra_pin": kra_pin,
        "branch_id": branch_id,
        "restaurant_id": restaurant_id,
    }
    changes = {field: value for field, value in given.items() if value is not None}
    if "email" in changes:
        changes["email"] = _email_checked(changes["email"], exclude=user)
    if "kra_pin" in changes:
        changes["kra_pin"] = _kra_pin_checked(changes["kra_pin"])
    changed = _changes_apply(user=user, changes=changes)
    if changed:
        _user_save(user, list(changed))
        audit_record(type="user.updated", actor=actor, target=user, data={"changes": changed})
    return user


@transaction.atomic
def user_deactivate(*, user: User, actor: User | None) -> User:
    """Deactivate a user: no more logins or refreshes, every session ends at once
    (EndReason.USER_DISABLED). The row and its history stay; it no longer counts toward the
    plan's user cap. Deactivating an already deactivated user changes nothing.

    The last active tenant admin cannot be deactivated (403 last_admin), or nobody could
    manage the tenant any more. The active admins' rows are locked (in one order) before the
    check, so two admins deactivating each other at once cannot both succeed.

    An actor needs to manage the user with `users.delete` (user_manage_check).
    """
    if actor is not None:
        user_manage_check(actor=actor, user=user, code=Perm.USERS_DELETE)
    admins: list[User] = []
    if user.is_tenant_admin:
        admins = list(User.objects.select_for_update().filter(is_tenant_admin=True, is_active=True).order_by("pk"))
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.deactivated_at is not None:
        return user
    if user.is_tenant_admin and user.is_active and not any(admin.pk != user.pk for admin in admins):
        raise ProblemError(ErrorCode.LAST_ADMIN, "The tenant's last active administrator cannot be deactivated.")
    user.is_active = False
    user.deactivated_at = timezone.now()
    user.save(update_fields=["is_active", "deactivated_at", "updated_at"])
    rbac_changed()  # cached permission sets say "active": the check API must deny at once
    ended = user_sessions_end(user=user, reason=EndReason.USER_DISABLED, actor=actor)
    audit_record(type="user.deactivated", actor=actor, target=user, data={"sessions_ended": ended})
    return user


@transaction.atomic
def user_set_password(*, user: User, password: str, password_rules: dict[str, Any], actor: User | None) -> int:
    """An admin sets a user's password: the tenant's policy applies (400 password_policy),
    the user must change it at next login, and every session of theirs ends
    (EndReason.ADMIN), since whoever held them may be why the password was reset.
    Returns how many sessions ended. The password is never logged or audited.

    An actor needs to manage the user with `users.edit` (user_manage_check): whoever sets a
    password can log in as its user, so nobody sets one for a user above them."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if actor is not None:
        user_manage_check(actor=actor, user=user, code=Perm.USERS_EDIT)
    password_validate(password, rules=password_rules, field="password")
    user.set_password(password)
    user.must_change_password = True
    user.save(update_fields=["password", "must_change_password", "updated_at"])
    ended = user_sessions_end(user=user, reason=EndReason.ADMIN, actor=actor)
    audit_record(type="password.changed", actor=actor, target=user, data={"by_admin": True, "sessions_ended": ended})
    # A notice without the password: the admin hands that over another way.
    email_kind_send(kind=Kind.PASSWORD_SET_BY_ADMIN, to=user.email, context={"changed_at": email_time(timezone.now())})
    return ended


@transaction.atomic
def user_admin_unlock(*, user: User, actor: User | None) -> bool:
    """Lift a user's lockout for someone who manages them (`users.edit`, user_manage_check):
    identity.services.login.user_unlock behind the same rules as the other actions on a user.
    Returns whether the user was locked."""
    if actor is not None:
        user_manage_check(actor=actor, user=user, code=Perm.USERS_EDIT)
    return user_unlock(user=user, actor=actor)


def profile_update(
    *,
    user: User,
    full_name: str | None = None,
    phone: str | None = None,
    address: str | None = None,
    picture: File | Unset | None = UNSET,
) -> User:
    """The user's own change to their profile. `picture=None` removes the picture.

    A picture is checked and re-encoded (identity.pictures) before anything is written, so
    a refused one (413, 415) changes nothing. The new file is written under the tenant's
    own folder; the old one is deleted only once the change commits, and the new one is
    deleted again if the change fails.
    """
    checked = picture_check(picture) if isinstance(picture, File) else None
    storage = user.picture.storage
    new_name = ""
    if checked is not None:
        path = f"{current_schema()}/{picture_upload_to(user, '')}.{checked.extension}"
        new_name = storage.save(path, checked.as_file())
    try:
        return _profile_save(
            user=user, full_name=full_name, phone=phone, address=address, picture=picture, new_picture=new_name
        )
    except BaseException:
        if new_name:
            storage.delete(new_name)
        raise


@transaction.atomic
def _profile_save(
    *,
    user: User,
    full_name: str | None,
    phone: str | None,
    address: str | None,
    picture: File | Unset | None,
    new_picture: str,
) -> User:
    user = User.objects.select_for_update().get(pk=user.pk)
    old_picture = user.picture.name or ""
    given = {"full_name": full_name, "phone": phone, "address": address}
    changes: dict[str, Any] = {field: value for field, value in given.items() if value is not None}
    changed = _changes_apply(user=user, changes=changes)
    if not isinstance(picture, Unset) and (new_picture or old_picture):
        user.picture.name = new_picture or None
        changed["picture"] = {"before": old_picture or None, "after": new_picture or None}
    if changed:
        _user_save(user, list(changed))
        audit_record(type="user.updated", actor=user, target=user, data={"changes": changed, "self_service": True})
    if "picture" in changed and old_picture:
        storage = user.picture.storage
        transaction.on_commit(lambda: storage.delete(old_picture))
    return user
