"""OAuth endpoints for services (API.md "OAuth endpoints for services"): introspection
(RFC 7662) of access, refresh and service tokens, with exactly `{"active": false}` for every
token that is not usable; revocation (RFC 7009), which ends the token's session; client
authentication and scopes; and a revoked session refused by the check API and by
introspection (API.md "Conventions": "Revoked session").

Every refusal asserts its status, its code and that nothing changed."""

import json
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient

from identity.keys import active_signing_key
from identity.models import AuditEvent, User
from identity.services.tokens import access_claims_set
from identity.services.users import user_deactivate
from identity.tokens import IdpAccessToken
from rbac.catalog import EMPLOYEE
from rbac.models import Branch, Role
from rbac.service_clients import service_client_revoke
from rbac.services import role_assign
from sessions.models import DeviceSession
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import UserFactory
from tests.rbac.test_service_clients import basic, make_client, service_token

HOST = "acme.idp.test"
OTHER_HOST = "globex.idp.test"
PUBLIC_HOST = "idp.test"
INTROSPECT = "/api/v1/oauth/introspect/"
REVOKE = "/api/v1/oauth/revoke/"
WHOAMI = "/api/v1/auth/whoami/"
REFRESH = "/api/v1/auth/token/refresh/"
CHECK = "/api/v1/authz/check/"
COOK_EMAIL = "cook@acme.example"
INACTIVE = {"active": False}


# --- the cast and helpers -------------------------------------------------------------------------


@pytest.fixture
def cook(tenant_a):
    with schema_context("acme"):
        user = cast(User, UserFactory(email=COOK_EMAIL, full_name="Cook Kamau"))
        role_assign(user=user, role=Role.objects.get(name=EMPLOYEE), branch=None, actor=None)
        return user


@pytest.fixture
def cook_tokens(cook):
    return login_tokens(HOST, COOK_EMAIL, device_id="till-cook")


@pytest.fixture
def introspector(tenant_a):
    """(client_id, secret) of a client holding oauth:introspect."""
    return make_client(scopes=["oauth:introspect"], name="Gateway")


@pytest.fixture
def revoker(tenant_a):
    return make_client(scopes=["oauth:revoke"], name="Kiosk app")


def form_post(path, body, *, credentials=None, host=HOST, **headers):
    """A form-encoded POST (RFC 6749), with client_secret_basic when `credentials` are given."""
    if credentials is not None:
        headers["HTTP_AUTHORIZATION"] = basic(*credentials)
    return APIClient(HTTP_HOST=host).post(
        path, urlencode(body), content_type="application/x-www-form-urlencoded", **headers
    )


def introspect(token, credentials, **extra):
    return form_post(INTROSPECT, {"token": token, **extra}, credentials=credentials)


def introspection_of(token, credentials, **extra) -> dict[str, Any]:
    response = introspect(token, credentials, **extra)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    return dict(response.json())


def assert_inactive(response):
    """RFC 7662 2.2: an inactive token is `{"active": false}` and nothing more."""
    assert response.status_code == 200, response.content
    assert json.loads(response.content) == INACTIVE


def revoke(token, credentials, **extra):
    return form_post(REVOKE, {"token": token, **extra}, credentials=credentials)


def whoami(access):
    return bearer_client(HOST, access).get(WHOAMI)


def refresh(token):
    return APIClient(HTTP_HOST=HOST).post(REFRESH, {"refresh": token}, format="json")


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def sign_with_acme_key(tenant, claims):
    with tenant_context(tenant):
        key = active_signing_key()
        return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})


def acme_state():
    """What introspection must never change and a refused revocation must not: every
    session's state and the audit trail."""
    with schema_context("acme"):
        sessions = sorted(DeviceSession.objects.values_list("id", "ended_at", "end_reason"), key=str)
        return sessions, AuditEvent.objects.count()


def session_of(tokens):
    with schema_context("acme"):
        return DeviceSession.objects.get(pk=tokens["session_id"])


# --- introspection: active tokens -----------------------------------------------------------------


def test_an_active_access_token_is_described_with_its_claims_and_the_users_email(cook, cook_tokens, introspector):
    answer = introspection_of(cook_tokens["access"], introspector)

    claims = claims_of(cook_tokens["access"])
    assert answer == {
        "active": True,
        "token_type": "access_token",
        "username": COOK_EMAIL,
        **{name: claims[name] for name in ("sub", "sid", "did", "tid", "iss", "aud", "exp", "iat", "nbf", "jti")},
    }
    assert answer["sub"] == str(cook.pk) and answer["sid"] == cook_tokens["session_id"] and answer["tid"] == "acme"


def test_an_active_refresh_token_is_described_while_it_is_the_sessions_current_one(cook, cook_tokens, introspector):
    answer = introspection_of(cook_tokens["refresh"], introspector, token_type_hint="refresh_token")

    claims = claims_of(cook_tokens["refresh"])
    assert answer == {
        "active": True,
        "token_type": "refresh_token",
        "username": COOK_EMAIL,
        **{name: claims[name] for name in ("sub", "sid", "did", "tid", "iss", "aud", "exp", "iat", "jti")},
    }


def test_a_rotated_refresh_token_is_inactive_and_its_successor_active(cook_tokens, introspector):
    rotated = refresh(cook_tokens["refresh"]).json()

    assert_inactive(introspect(cook_tokens["refresh"], introspector))
    assert introspection_of(rotated["refresh"], introspector)["active"] is True
    assert introspection_of(rotated["access"], introspector)["active"] is True


def test_an_active_service_token_names_its_client_and_scope(introspector):
    client_id, secret = make_client(scopes=["authz:check"], name="POS")
    token = service_token(client_id, secret)

    answer = introspection_of(token, introspector)

    claims = claims_of(token)
    assert answer == {
        "active": True,
        "token_type": "service_token",
        "client_id": client_id,
        **{name: claims[name] for name in ("sub", "tid", "iss", "aud", "exp", "iat", "nbf", "jti", "scope")},
    }
    assert answer["scope"] == "authz:check" and answer["sub"] == client_id


def test_the_hint_is_not_needed_and_a_wrong_hint_changes_nothing(cook_tokens, introspector):
    answer = introspection_of(cook_tokens["access"], introspector, token_type_hint="refresh_token")

    assert answer["active"] is True and answer["token_type"] == "access_token"


def test_client_secret_post_and_a_json_body_are_accepted(cook_tokens, introspector):
    client_id, secret = introspector
    by_form = form_post(INTROSPECT, {"token": cook_tokens["access"], "client_id": client_id, "client_secret": secret})
    by_json = APIClient(HTTP_HOST=HOST).post(
        INTROSPECT, {"token": cook_tokens["access"], "client_id": client_id, "client_secret": secret}, format="json"
    )

    assert by_form.status_code == 200 and by_form.json()["active"] is True
    assert by_json.status_code == 200 and by_json.json()["active"] is True


def test_a_client_restricted_to_branches_may_introspect_any_token_of_its_tenant(tenant_a, cook_tokens):
    with schema_context("acme"):
        Branch.objects.create(external_id="nbo-1", name="Nairobi")
    restricted = make_client(scopes=["oauth:introspect"], branches=["nbo-1"], name="Branch gateway")

    assert introspection_of(cook_tokens["access"], restricted)["active"] is True


def test_introspection_changes_nothing_and_does_not_keep_the_session_alive(cook_tokens, introspector):
    before = acme_state()
    last_active = session_of(cook_tokens).last_active_at

    introspection_of(cook_tokens["access"], introspector)

    assert acme_state() == before
    assert session_of(cook_tokens).last_active_at == last_active


# --- introspection: every inactive case is {"active": false} ------------------------------------------


def expired_access_token(tenant, tokens):
    with tenant_context(tenant):
        session = DeviceSession.objects.get(pk=tokens["session_id"])
        token = IdpAccessToken()
        access_claims_set(token, user=User.objects.get(pk=session.user_id), session=session, roles=None)
        token.set_exp(lifetime=-timedelta(minutes=5))
        return str(token)


def foreign_key_token(tokens):
    """The real claims and kid, signed with a key that is not acme's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(tokens["access"])["kid"]
    return jwt.encode(claims_of(tokens["access"]), key, algorithm="RS256", headers={"kid": kid})


INACTIVE_CASES = {
    "an expired access token": lambda t, tenant: expired_access_token(tenant, t),
    "a malformed token": lambda t, tenant: "not-a-token",
    "three dots of garbage": lambda t, tenant: "eyJhbGciOiJSUzI1NiJ9.e30.AAAA",
    "a huge token": lambda t, tenant: "x" * 20_000,
    "a tampered signature": lambda t, tenant: t["access"][:-4] + ("AAAA" if t["access"][-4:] != "AAAA" else "BBBB"),
    "a token signed with another key": lambda t, tenant: foreign_key_token(t),
    "an id token type nobody issues": lambda t, tenant: sign_with_acme_key(
        tenant, claims_of(t["access"]) | {"token_type": "id"}
    ),
    "an access token whose sid is not a session id": lambda t, tenant: sign_with_acme_key(
        tenant, claims_of(t["access"]) | {"sid": "not-a-uuid"}
    ),
}


@pytest.mark.parametrize("case", list(INACTIVE_CASES))
def test_an_unusable_token_is_exactly_active_false(case, tenant_a, cook_tokens, introspector):
    token = INACTIVE_CASES[case](cook_tokens, tenant_a)
    before = acme_state()

    assert_inactive(introspect(token, introspector))
    assert acme_state() == before


def test_another_tenants_tokens_are_inactive_here(tenant_b_admin, introspector):
    globex = login_tokens(OTHER_HOST, SHARED_ADMIN_EMAIL)
    globex_client = make_client(scopes=["authz:check"], schema="globex")
    globex_service_token = service_token(*globex_client, host=OTHER_HOST)

    for token in (globex["access"], globex["refresh"], globex_service_token):
        assert_inactive(introspect(token, introspector))


def test_tokens_of_an_ended_session_are_inactive(cook_tokens, introspector):
    assert bearer_client(HOST, cook_tokens["access"]).post(
        "/api/v1/auth/logout/", {"refresh": cook_tokens["refresh"]}, format="json"
    ).status_code in (200, 204)

    assert_inactive(introspect(cook_tokens["access"], introspector))
    assert_inactive(introspect(cook_tokens["refresh"], introspector))


def test_a_deactivated_users_tokens_are_inactive(tenant_a_admin, cook, introspector):
    tokens = login_tokens(HOST, COOK_EMAIL, device_id="till-2")
    with schema_context("acme"):
        # Deactivated without ending the session, so that only the user's state can answer.
        User.objects.filter(pk=cook.pk).update(is_active=False)

    assert_inactive(introspect(tokens["access"], introspector))
    assert_inactive(introspect(tokens["refresh"], introspector))


def test_a_revoked_clients_service_token_is_inactive(introspector):
    client_id, secret = make_client(scopes=["authz:check"], name="POS")
    token = service_token(client_id, secret)
    with schema_context("acme"):
        from rbac.models import ServiceClient

        service_client_revoke(client=ServiceClient.objects.get(client_id=client_id), actor=None)

    assert_inactive(introspect(token, introspector))


# --- client authentication and scope ----------------------------------------------------------------


@pytest.mark.parametrize("path", [INTROSPECT, REVOKE])
def test_without_client_authentication_the_answer_is_401_not_authenticated_and_nothing_changes(path, cook_tokens):
    before = acme_state()

    anonymous = form_post(path, {"token": cook_tokens["access"]})
    with_a_users_bearer_token = form_post(
        path, {"token": cook_tokens["access"]}, HTTP_AUTHORIZATION=f"Bearer {cook_tokens['access']}"
    )

    for response in (anonymous, with_a_users_bearer_token):
        assert_problem(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == 'Basic realm="idp"'
    assert acme_state() == before
    assert whoami(cook_tokens["access"]).status_code == 200


def test_a_service_token_is_not_client_authentication_here(cook_tokens):
    client_id, secret = make_client(scopes=["oauth:introspect", "oauth:revoke"], name="Gateway")
    token = service_token(client_id, secret)

    response = form_post(INTROSPECT, {"token": cook_tokens["access"]}, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_problem(response, 401, "not_authenticated")


@pytest.mark.parametrize("path", [INTROSPECT, REVOKE])
@pytest.mark.parametrize("what", ["a wrong secret", "an unknown client", "a revoked client", "malformed Basic"])
def test_bad_client_credentials_are_401_invalid_credentials_and_nothing_changes(path, what, cook_tokens):
    client_id, secret = make_client(scopes=["oauth:introspect", "oauth:revoke"], name="Gateway")
    headers = {"HTTP_AUTHORIZATION": basic(client_id, secret + "x")}
    if what == "an unknown client":
        headers = {"HTTP_AUTHORIZATION": basic("nobody-" + client_id, secret)}
    elif what == "a revoked client":
        from rbac.models import ServiceClient

        with schema_context("acme"):
            service_client_revoke(client=ServiceClient.objects.get(client_id=client_id), actor=None)
        headers = {"HTTP_AUTHORIZATION": basic(client_id, secret)}
    elif what == "malformed Basic":
        headers = {"HTTP_AUTHORIZATION": "Basic %%%not-base64"}
    before = acme_state()

    response = form_post(path, {"token": cook_tokens["access"]}, **headers)

    assert_problem(response, 401, "invalid_credentials")
    assert response["WWW-Authenticate"] == 'Basic realm="idp"'
    assert acme_state() == before
    assert whoami(cook_tokens["access"]).status_code == 200


def test_a_client_revoked_after_authenticating_is_refused_at_its_next_call(cook_tokens):
    client_id, secret = make_client(scopes=["oauth:introspect"], name="Gateway")
    assert introspection_of(cook_tokens["access"], (client_id, secret))["active"] is True  # remembered now
    from rbac.models import ServiceClient

    with schema_context("acme"):
        service_client_revoke(client=ServiceClient.objects.get(client_id=client_id), actor=None)

    assert_problem(introspect(cook_tokens["access"], (client_id, secret)), 401, "invalid_credentials")


def test_a_wrong_secret_is_refused_after_the_right_one_was_accepted(cook_tokens):
    client_id, secret = make_client(scopes=["oauth:introspect"], name="Gateway")
    assert introspection_of(cook_tokens["access"], (client_id, secret))["active"] is True

    assert_problem(introspect(cook_tokens["access"], (client_id, secret[:-1])), 401, "invalid_credentials")
    assert_problem(introspect(cook_tokens["access"], (client_id, secret + "x")), 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("path", "scopes"),
    [(INTROSPECT, ["authz:check", "oauth:revoke"]), (REVOKE, ["authz:check", "oauth:introspect"])],
)
def test_a_client_without_the_endpoints_scope_is_403_permission_denied_and_nothing_changes(path, scopes, cook_tokens):
    credentials = make_client(scopes=scopes, name="Other")
    before = acme_state()

    response = form_post(path, {"token": cook_tokens["access"]}, credentials=credentials)

    assert_problem(response, 403, "permission_denied")
    assert acme_state() == before
    assert whoami(cook_tokens["access"]).status_code == 200


@pytest.mark.parametrize("path", [INTROSPECT, REVOKE])
@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token_type_hint": "access_token"}])
def test_a_request_without_a_token_is_400_invalid_request_and_nothing_changes(path, body, introspector, revoker):
    credentials = introspector if path == INTROSPECT else revoker
    before = acme_state()

    response = form_post(path, body, credentials=credentials)

    assert assert_problem(response, 400, "invalid_request")["errors"].keys() == {"token"}
    assert acme_state() == before


def test_a_token_with_surrounding_blanks_is_read_as_the_serializer_reads_it(cook_tokens, introspector):
    answer = introspection_of(f"  {cook_tokens['access']}\n", introspector, token_type_hint="")

    assert answer["active"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"token": "x\x00y"}, "token"),
        ({"token": "t", "token_type_hint": "h" * 65}, "token_type_hint"),
        ({"token": "t", "token_type_hint": "a\x00"}, "token_type_hint"),
    ],
)
def test_a_body_the_serializer_refuses_is_400_naming_the_field(body, field, introspector):
    before = acme_state()

    response = form_post(INTROSPECT, body, credentials=introspector)

    assert field in assert_problem(response, 400, "invalid_request")["errors"]
    assert acme_state() == before


@pytest.mark.parametrize("body", [[{"token": "t"}], "token", 7])
def test_a_json_body_that_is_not_an_object_is_400_not_500(body, introspector):
    before = acme_state()

    response = APIClient(HTTP_HOST=HOST, HTTP_AUTHORIZATION=basic(*introspector)).post(INTROSPECT, body, format="json")

    assert_problem(response, 400, "invalid_request")
    assert acme_state() == before


@pytest.mark.parametrize("path", [INTROSPECT, REVOKE])
def test_the_oauth_endpoints_are_not_served_on_the_public_host(path, introspector):
    response = form_post(path, {"token": "anything"}, credentials=introspector, host=PUBLIC_HOST)

    assert_problem(response, 404, "not_found")


# --- revocation ---------------------------------------------------------------------------------------


def test_revoking_a_refresh_token_ends_its_session_and_its_access_tokens_are_refused(cook, cook_tokens, revoker):
    response = revoke(cook_tokens["refresh"], revoker, token_type_hint="refresh_token")

    assert response.status_code == 200, response.content
    assert response.content == b""
    assert_problem(whoami(cook_tokens["access"]), 401, "session_ended")
    assert_problem(refresh(cook_tokens["refresh"]), 401, "session_ended")
    assert session_of(cook_tokens).end_reason == "logout"
    with schema_context("acme"):
        [ended] = AuditEvent.objects.filter(type="session.ended", target_id=str(cook.pk))
        [revoked] = AuditEvent.objects.filter(type="token.revoked", target_id=str(cook.pk))
    assert ended.actor_id is None and ended.data["reason"] == "logout"
    assert revoked.data == {
        "client_id": revoker[0],
        "session_id": cook_tokens["session_id"],
        "token_type": "refresh_token",
    }


def test_revoking_an_access_token_ends_its_session_too(cook, cook_tokens, revoker):
    response = revoke(cook_tokens["access"], revoker)

    assert response.status_code == 200, response.content
    assert_problem(whoami(cook_tokens["access"]), 401, "session_ended")
    assert_problem(refresh(cook_tokens["refresh"]), 401, "session_ended")
    with schema_context("acme"):
        [revoked] = AuditEvent.objects.filter(type="token.revoked", target_id=str(cook.pk))
    assert revoked.data["token_type"] == "access_token"


def test_revoking_leaves_the_users_other_sessions_alone(tenant_a, cook, revoker):
    tenant_a.policy = tenant_a.policy | {"sessions": {"max_sessions_per_user": 2, "on_limit": "terminate_oldest"}}
    tenant_a.save()
    kept = login_tokens(HOST, COOK_EMAIL, device_id="till-1")
    revoked = login_tokens(HOST, COOK_EMAIL, device_id="till-2")

    assert revoke(revoked["refresh"], revoker).status_code == 200

    assert whoami(kept["access"]).status_code == 200
    assert_problem(whoami(revoked["access"]), 401, "session_ended")


def test_revoking_twice_answers_200_both_times_and_ends_the_session_once(cook, cook_tokens, revoker):
    assert revoke(cook_tokens["refresh"], revoker).status_code == 200
    before = acme_state()

    response = revoke(cook_tokens["refresh"], revoker)

    assert response.status_code == 200 and response.content == b""
    assert acme_state() == before


UNREVOKABLE = {
    "garbage": lambda t, tenant: "not-a-token",
    "an expired access token": lambda t, tenant: expired_access_token(tenant, t),
    "a token signed with another key": lambda t, tenant: foreign_key_token(t),
    "an unknown session": lambda t, tenant: sign_with_acme_key(
        tenant, claims_of(t["access"]) | {"sid": "00000000-0000-4000-8000-000000000000"}
    ),
    "an access token whose sid is not a session id": lambda t, tenant: sign_with_acme_key(
        tenant, claims_of(t["access"]) | {"sid": "not-a-uuid"}
    ),
}


@pytest.mark.parametrize("case", list(UNREVOKABLE))
def test_revoking_an_unknown_or_invalid_token_answers_200_and_changes_nothing(case, tenant_a, cook_tokens, revoker):
    token = UNREVOKABLE[case](cook_tokens, tenant_a)
    before = acme_state()

    response = revoke(token, revoker)

    assert response.status_code == 200, response.content
    assert response.content == b""
    assert acme_state() == before
    assert whoami(cook_tokens["access"]).status_code == 200


def test_revoking_another_tenants_token_answers_200_and_changes_nothing_anywhere(tenant_b_admin, revoker):
    globex = login_tokens(OTHER_HOST, SHARED_ADMIN_EMAIL)
    before = acme_state()

    assert revoke(globex["refresh"], revoker).status_code == 200

    assert acme_state() == before
    assert bearer_client(OTHER_HOST, globex["access"]).get(WHOAMI).status_code == 200


def test_revoking_a_service_token_leaves_its_client_and_token_working(introspector, revoker):
    client_id, secret = make_client(scopes=["authz:check"], name="POS")
    token = service_token(client_id, secret)
    before = acme_state()

    assert revoke(token, revoker, token_type_hint="access_token").status_code == 200

    assert acme_state() == before
    assert introspection_of(token, introspector)["active"] is True


# --- a revoked session is refused by the check API and by introspection -------------------------------


def end_by_admin(tokens, revoker):
    admin = bearer_client(HOST, login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="desk-1")["access"])
    session = session_of(tokens)
    assert admin.delete(f"/api/v1/users/{session.user_id}/sessions/{session.pk}/").status_code == 204


def end_by_revocation(tokens, revoker):
    assert revoke(tokens["refresh"], revoker).status_code == 200


def end_by_deactivation(tokens, revoker):
    with schema_context("acme"):
        user_deactivate(user=User.objects.get(pk=session_of(tokens).user_id), actor=None)


@pytest.mark.parametrize(
    "end", [end_by_admin, end_by_revocation, end_by_deactivation], ids=["admin", "revocation", "deactivation"]
)
def test_a_revoked_session_is_refused_by_the_check_api_and_by_introspection(
    end, tenant_a_admin, cook_tokens, introspector, revoker
):
    checker = bearer_client(HOST, service_token(*make_client(scopes=["authz:check"], name="POS")))
    question = {"token": cook_tokens["access"], "permission": "orders.view"}
    assert checker.post(CHECK, question, format="json").json() == {"allowed": True}
    assert introspection_of(cook_tokens["access"], introspector)["active"] is True

    end(cook_tokens, revoker)

    assert checker.post(CHECK, question, format="json").json() == {"allowed": False}
    assert_inactive(introspect(cook_tokens["access"], introspector))
    assert_inactive(introspect(cook_tokens["refresh"], introspector))
    assert_problem(whoami(cook_tokens["access"]), 401, "session_ended")
