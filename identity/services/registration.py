"""Self-registration and email verification.

A registration never tells the caller whether the address already has an account: the
response, the work done (one password hash, one email) and the order of the checks are the
same for a new address, a pending one and a taken one. Only the inbox owner learns which
case it was, from the email they receive:

- a new address gets an inactive, unverified user (pending; it counts against the plan's
  cap) and a verification link;
- an address still pending gets a fresh link. The new registration replaces the pending
  account's password, name and phone, and the token covers the password hash, so only the
  newest link works. Keeping the first password instead would let anyone who registers a
  victim's address first choose the password the victim later activates by clicking a
  (fresh) link, at any time before; with the newest registration winning, an attacker would
  have to register between the victim's registration and their click, with no way to know
  when that is;
- an address that belongs to an active or deactivated account changes nothing and gets a
  notice instead (someone tried to register with it).

Roles: a new registrant gets the tenant's default role (policy "registration".
"default_role"), tenant-wide, in the transaction that creates them. They may also ask for
roles by name (`roles`), each of which must be one the policy lets registrants pick
("assignable_roles"), else the registration is refused (403 permission_denied) before
anything is written. A role holding every permission (`*`) is never picked this way,
whatever the policy says: nobody gives themselves `*`. The choice is judged from the request
and the policy alone, never from whether the address is taken, and a taken address gets no
role. A pending address registered again gets the newest registration's choice: picked roles
it no longer asks for are removed, the default role stays.
"""

import logging
from collections.abc import Sequence

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from core.errors import ErrorCode, ProblemError
from identity.models import User, normalize_email
from identity.passwords import password_validate
from identity.services.audit import audit_record
from identity.services.users import user_cap_check
from identity.verification import EMAIL_VERIFICATION_TIMEOUT, email_verification_token, uid_encode, verified_link_user
from notifications.kinds import Kind
from notifications.services import email_kind_send
from rbac.catalog import ALL_PERMISSIONS
from rbac.models import Role, RoleAssignment
from rbac.services import role_assign, role_unassign, user_default_role_assign
from tenants.models import Tenant
from tenants.services import tenant_origin

logger = logging.getLogger("idp.registration")

REGISTRATION_SOURCE = "registration"
INVALID_LINK_DETAIL = "The verification link is invalid, already used or expired."


def registration_open_check(*, tenant: Tenant) -> None:
    """Refuse (403 permission_denied) where self-registration is closed: by the tenant's
    policy, or on the platform's own host, whose users are platform operators."""
    if not tenant.is_customer or not tenant.effective_policy["registration"]["open"]:
        raise ProblemError(ErrorCode.PERMISSION_DENIED, "Self-registration is closed here.")


def registration_roles_resolve(*, tenant: Tenant, names: Sequence[str]) -> list[Role]:
    """The roles a registrant asked for, by name (any case). Each must be listed in the
    tenant's policy (registration.assignable_roles), exist, and not hold `*`; otherwise 403
    permission_denied, naming the refused ones. Reads only."""
    allowed = {name.casefold() for name in tenant.effective_policy["registration"]["assignable_roles"]}
    roles: dict[int, Role] = {}
    refused: list[str] = []
    for name in dict.fromkeys(names):
        role = Role.objects.filter(name__iexact=name).first() if name.casefold() in allowed else None
        if role is None or role.permissions.filter(code=ALL_PERMISSIONS).exists():
            refused.append(name)
        else:
            roles[role.pk] = role
    if refused:
        raise ProblemError(
            ErrorCode.PERMISSION_DENIED,
            "These roles cannot be chosen at registration.",
            errors={"roles": [f"Not a role registrants may choose: {name}" for name in refused]},
        )
    return list(roles.values())


def user_is_pending(user: User) -> bool:
    """Registered but not verified yet, and not deactivated (login says email_not_verified)."""
    return not user.is_active and user.email_verified_at is None and user.deactivated_at is None


@transaction.atomic
def user_register(
    *,
    tenant: Tenant,
    email: str,
    password: str,
    full_name: str,
    phone: str = "",
    roles: Sequence[str] = (),
) -> User | None:
    """Register `email` in the current tenant schema (see the module docstring for the three
    cases, and for `roles`). Returns the new or renewed pending user, None when the address
    belongs to an account that is not pending; callers must not let the difference show.

    Raises ProblemError: 403 permission_denied (closed, or a role registrants may not
    choose), 400 password_policy, 403 user_cap_reached. None of these depends on whether the
    address is taken: the cap is checked before the address is looked up, so at the cap a
    pending address cannot get a fresh link either.
    """
    registration_open_check(tenant=tenant)
    chosen = registration_roles_resolve(tenant=tenant, names=roles)
    password_validate(password, rules=tenant.effective_policy["password"])
    email = normalize_email(email)
    # Hashed whatever happens next, so a taken address costs the same time as a new one.
    password_hash = make_password(password)
    # Locks the tenant's row: registrations (and other user creations) of one tenant run
    # one at a time from here, so two registrations of one address cannot both create it.
    user_cap_check(tenant=tenant)

    user = User.objects.select_for_update().filter(email=email).first()
    created = None
    if user is None:
        created = _pending_user_create(email=email, password_hash=password_hash, full_name=full_name, phone=phone)
        user = created or User.objects.select_for_update().get(email=email)
    if created is None:
        if not user_is_pending(user):
            logger.info("Registration for the existing account %s: notice sent, nothing changed", user.pk)
            _send_taken_notice(tenant=tenant, email=user.email)
            return None
        _pending_user_renew(user=user, password_hash=password_hash, full_name=full_name, phone=phone)
        _pending_roles_renew(tenant=tenant, user=user, chosen=chosen)
    else:
        default = user_default_role_assign(user=created, tenant=tenant)
        for role in chosen:
            if default is None or role.pk != default.role_id:
                role_assign(user=created, role=role, branch=None, actor=None)
    _send_verification_link(tenant=tenant, user=user)
    return user


def _pending_user_create(*, email: str, password_hash: str, full_name: str, phone: str) -> User | None:
    """The new pending user, or None when a concurrent creation that did not take the tenant
    lock won the address (the unique constraint refused ours; the caller treats the address
    as existing)."""
    try:
        with transaction.atomic():  # a savepoint, so the outer transaction survives a refusal
            user = User.objects.create(
                email=email,
                password=password_hash,
                full_name=full_name,
                phone=phone,
                is_active=False,
            )
    except IntegrityError:
        return None
    audit_record(type="user.created", actor=user, target=user, data={"source": REGISTRATION_SOURCE})
    return user


def _pending_user_renew(*, user: User, password_hash: str, full_name: str, phone: str) -> None:
    changed = ["password"]  # always: a new salt, and the older links stop working
    user.password = password_hash
    if user.full_name != full_name:
        user.full_name, changed = full_name, [*changed, "full_name"]
    if user.phone != phone:
        user.phone, changed = phone, [*changed, "phone"]
    user.save(update_fields=[*changed, "updated_at"])
    audit_record(type="user.updated", actor=user, target=user, data={"source": REGISTRATION_SOURCE, "fields": changed})


def _pending_roles_renew(*, tenant: Tenant, user: User, chosen: list[Role]) -> None:
    """The newest registration's roles for a pending account: the default role, plus the
    chosen ones; roles registrants may choose that it no longer asks for are removed. Roles
    registrants cannot choose (given by an admin meanwhile) are left as they are."""
    policy = tenant.effective_policy["registration"]
    wanted = {role.pk for role in chosen}
    choosable = {name.casefold() for name in policy["assignable_roles"]}
    held = {a.role_id: a for a in RoleAssignment.objects.filter(user=user, branch__isnull=True).select_related("role")}
    default = Role.objects.filter(name__iexact=policy["default_role"]).first()
    for role_id, assignment in held.items():
        dropped = role_id not in wanted and assignment.role.name.casefold() in choosable
        if dropped and (default is None or role_id != default.pk):
            role_unassign(assignment=assignment, actor=None)
    for role in [*([default] if default is not None else []), *chosen]:
        if role.pk not in held:
            held[role.pk] = role_assign(user=user, role=role, branch=None, actor=None)


def email_verification_link(*, tenant: Tenant, user: User) -> str:
    """The emailed link: a page on the tenant's registered domain (never the request's Host)."""
    path = reverse(
        "web-verify-email",
        urlconf="config.urls_tenant",
        kwargs={"uidb64": uid_encode(user.pk), "token": email_verification_token.make_token(user)},
    )
    return f"{tenant_origin(tenant)}{path}"


def _send_verification_link(*, tenant: Tenant, user: User) -> None:
    # No name in it: whoever registered typed it, and the address may not be theirs.
    email_kind_send(
        kind=Kind.REGISTRATION_VERIFY,
        to=user.email,
        tenant=tenant,
        context={
            "verification_link": email_verification_link(tenant=tenant, user=user),
            "link_valid_days": str(EMAIL_VERIFICATION_TIMEOUT.days),
        },
    )


def _send_taken_notice(*, tenant: Tenant, email: str) -> None:
    email_kind_send(kind=Kind.REGISTRATION_EXISTING, to=email, tenant=tenant, context={})


@transaction.atomic
def email_verify(*, tenant: Tenant, uidb64: str, token: str) -> User:
    """Follow an emailed verification link: activate the pending account it names.

    One answer (400 invalid_token) for every link that does not work: malformed, unknown
    user, tampered, used, superseded, expired, another tenant's, or a deactivated account,
    which an old link must never bring back. The user's row is locked, so a link followed
    twice at once activates (and audits) once.
    """
    user = verified_link_user(uidb64=uidb64, token=token, for_update=True) if tenant.is_customer else None
    if user is None or not user_is_pending(user):
        raise ProblemError(ErrorCode.INVALID_TOKEN, INVALID_LINK_DETAIL, status=400)
    user.is_active = True
    user.email_verified_at = timezone.now()
    user.save(update_fields=["is_active", "email_verified_at", "updated_at"])
    audit_record(type="email.verified", actor=user, target=user, data={"email": user.email})
    return user


def email_verification_link_works(*, tenant: Tenant, uidb64: str, token: str) -> bool:
    """Whether following the link would activate an account; reads only (the page's GET)."""
    if not tenant.is_customer:
        return False
    user = verified_link_user(uidb64=uidb64, token=token)
    return user is not None and user_is_pending(user)
