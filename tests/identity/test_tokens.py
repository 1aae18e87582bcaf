"""Tenant-bound JWTs: what is accepted, what is refused, rotation, reuse, keys."""

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from identity.keys import active_signing_key, forget_cached_keys
from identity.models import AuditEvent, SigningKey, User
from identity.tokens import VERIFIED_TTL_SECONDS, TenantTokenBackend, token_type_unverified
from rbac.models import Branch, Role
from rbac.services import role_assign
from sessions.models import DeviceSession, EndReason
from sessions.services import sessions_end
from tests.concurrency import in_parallel, on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem

HOST = "acme.idp.test"
WHOAMI = "/api/v1/auth/whoami/"
REFRESH = "/api/v1/auth/token/refresh/"


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    forget_cached_keys()
    yield
    forget_cached_keys()


@pytest.fixture
def tokens(tenant_a):
    return login_tokens(HOST, SHARED_ADMIN_EMAIL)


def whoami(access, host=HOST):
    return bearer_client(host, access).get(WHOAMI)


def refresh(token, host=HOST):
    return APIClient(HTTP_HOST=host).post(REFRESH, {"refresh": token}, format="json")


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_with_acme_key(tenant, claims, headers=None):
    """A token signed by acme's real key, with whatever claims a test wants to try."""
    with tenant_context(tenant):
        key = active_signing_key()
        return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid} | (headers or {}))


# --- accepted ----------------------------------------------------------------------------------


def test_an_access_token_carries_the_contract_claims_and_a_kid(tokens, tenant_a):
    header = jwt.get_unverified_header(tokens["access"])
    claims = claims_of(tokens["access"])

    with schema_context("acme"):
        admin = User.objects.get(email=SHARED_ADMIN_EMAIL)
        assert SigningKey.objects.filter(kid=header["kid"], algorithm="RS256").exists()
    assert header["alg"] == "RS256"
    assert claims["iss"] == claims["aud"] == "http://acme.idp.test"
    assert claims["sub"] == str(admin.pk)
    assert claims["tid"] == "acme"
    assert claims["sid"] == tokens["session_id"]
    assert claims["did"] == "pos-1"
    assert claims["token_type"] == "access"
    assert claims["roles"] == ["Admin"]
    assert claims["email"] == SHARED_ADMIN_EMAIL
    assert claims["exp"] - claims["iat"] == 30 * 60
    assert not any("perm" in name for name in claims)
    assert whoami(tokens["access"]).status_code == 200


def test_tenant_chosen_profile_claims_are_added_when_set(tenant_a):
    with schema_context("acme"):
        User.objects.filter(email=SHARED_ADMIN_EMAIL).update(employee_id="E-7", branch_id="12")

    claims = claims_of(login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"])

    assert (claims["employee_id"], claims["branch_id"]) == ("E-7", "12")
    assert "restaurant_id" not in claims  # empty values are left out


def test_a_stock_jwks_client_verifies_an_issued_token_against_the_running_server(live_server, tokens):
    # The key is committed with the tenant, so the live server's own connection publishes it.
    client = jwt.PyJWKClient(f"{live_server.url}/.well-known/jwks.json", headers={"Host": HOST})

    signing_key = client.get_signing_key_from_jwt(tokens["access"])
    claims = jwt.decode(
        tokens["access"],
        signing_key.key,
        algorithms=["RS256"],
        audience="http://acme.idp.test",
        issuer="http://acme.idp.test",
    )

    assert claims["sid"] == tokens["session_id"]


def test_the_jwks_publishes_public_keys_only(tenant_a):
    body = APIClient(HTTP_HOST=HOST).get("/.well-known/jwks.json").json()

    assert body["keys"]
    for key in body["keys"]:
        assert {"kid", "alg", "kty", "use"} <= set(key)
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_private_keys_are_encrypted_at_rest(tenant_a):
    with schema_context("acme"):
        stored = SigningKey.objects.get().private_key_encrypted

    assert "PRIVATE KEY" not in stored
    assert not stored.startswith("-----")


def test_discovery_names_the_tenants_issuer_and_endpoints(tenant_a):
    body = APIClient(HTTP_HOST=HOST).get("/.well-known/openid-configuration").json()

    assert body["issuer"] == "http://acme.idp.test"
    assert body["jwks_uri"] == "http://acme.idp.test/.well-known/jwks.json"
    assert body["token_endpoint"] == "http://acme.idp.test/api/v1/auth/token/"


def test_the_template_schema_never_holds_a_signing_key(tenant_a):
    with schema_context("tenant_template"):
        assert not SigningKey.objects.exists()


# --- refused -----------------------------------------------------------------------------------


def test_a_token_of_another_tenant_is_refused_even_for_a_user_with_the_same_email(tenant_a, tenant_b):
    globex = login_tokens("globex.idp.test", SHARED_ADMIN_EMAIL)

    assert_problem(whoami(globex["access"]), 401, "invalid_token")
    assert_problem(refresh(globex["refresh"]), 401, "invalid_token")
    assert whoami(globex["access"], host="globex.idp.test").status_code == 200


def test_a_token_with_alg_none_is_refused(tokens, tenant_a):
    claims = claims_of(tokens["access"])
    kid = jwt.get_unverified_header(tokens["access"])["kid"]
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    forged = f"{header}.{b64(json.dumps(claims).encode())}."

    assert_problem(whoami(forged), 401, "invalid_token")


def test_an_hs256_token_keyed_with_the_public_key_is_refused(tokens, tenant_a):
    claims = claims_of(tokens["access"])
    kid = jwt.get_unverified_header(tokens["access"])["kid"]
    with schema_context("acme"):
        public_jwk = SigningKey.objects.get(kid=kid).public_jwk
    secret = json.dumps(public_jwk).encode()
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    signature = b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())

    assert_problem(whoami(f"{signing_input}.{signature}"), 401, "invalid_token")


def test_a_token_signed_with_another_key_under_the_real_kid_is_refused(tokens, tenant_a):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(tokens["access"])["kid"]

    forged = jwt.encode(claims_of(tokens["access"]), attacker, algorithm="RS256", headers={"kid": kid})

    assert_problem(whoami(forged), 401, "invalid_token")


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u"])
def test_key_location_headers_are_ignored(tokens, tenant_a, header):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    value = attacker_jwk if header == "jwk" else "https://attacker.example/keys.json"

    forged = jwt.encode(claims_of(tokens["access"]), attacker, algorithm="RS256", headers={header: value})

    assert_problem(whoami(forged), 401, "invalid_token")


@pytest.mark.parametrize(
    "change",
    [
        {"exp": int(time.time()) - 60},
        {"nbf": int(time.time()) + 3600},
        {"iss": "http://globex.idp.test"},
        {"aud": "http://someone-else.example"},
        {"tid": "globex"},
        {"token_type": "refresh"},
        {"token_type": None},
        {"sid": None},
        {"sid": "not-a-session-id"},
        {"jti": None},
    ],
)
def test_a_properly_signed_token_with_a_bad_claim_is_refused(tokens, tenant_a, change):
    claims = {key: value for key, value in (claims_of(tokens["access"]) | change).items() if value is not None}

    response = whoami(sign_with_acme_key(tenant_a, claims))

    assert response.status_code == 401
    assert response.json()["code"] in {"invalid_token", "session_ended"}


def test_a_refresh_token_is_not_a_bearer_token_and_an_access_token_does_not_refresh(tokens):
    assert_problem(whoami(tokens["refresh"]), 401, "invalid_token")
    assert_problem(refresh(tokens["access"]), 401, "invalid_token")


def hs256(claims, secret, kid):
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def refresh_is_refused_and_rotates_nothing(tokens, forged):
    with schema_context("acme"):
        before = DeviceSession.objects.get(pk=tokens["session_id"]).refresh_jti_hash
        blacklisted = BlacklistedToken.objects.count()
    assert_problem(refresh(forged), 401, "invalid_token")
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=tokens["session_id"]).refresh_jti_hash == before
        assert BlacklistedToken.objects.count() == blacklisted
    assert refresh(tokens["refresh"]).status_code == 200  # the real token still works


def test_a_refresh_token_is_hs256_under_the_key_derived_from_the_signing_key(tokens, tenant_a):
    header = jwt.get_unverified_header(tokens["refresh"])
    with tenant_context(tenant_a):
        key = active_signing_key()
    secret = key.refresh_secret
    assert header == {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    assert secret is not None and len(secret) == 32
    assert secret not in key.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    claims = jwt.decode(tokens["refresh"], secret, algorithms=["HS256"], audience="http://acme.idp.test")
    assert claims["token_type"] == "refresh"


def test_a_refresh_token_signed_with_the_signing_key_itself_as_before_is_still_accepted(tokens, tenant_a):
    # Refresh tokens issued before they were HMAC-signed (decision 43) work until they expire.
    earlier = sign_with_acme_key(tenant_a, claims_of(tokens["refresh"]))
    assert jwt.get_unverified_header(earlier)["alg"] == "RS256"

    assert refresh(earlier).status_code == 200
    assert_problem(refresh(tokens["refresh"]), 401, "token_reused")  # it was the same token


def test_a_refresh_token_signed_with_another_key_under_the_real_kid_is_refused(tokens, tenant_a):
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = jwt.get_unverified_header(tokens["refresh"])["kid"]
    forged = jwt.encode(claims_of(tokens["refresh"]), attacker, algorithm="RS256", headers={"kid": kid})

    refresh_is_refused_and_rotates_nothing(tokens, forged)


def test_a_refresh_token_hmac_keyed_with_the_public_key_is_refused(tokens, tenant_a):
    kid = jwt.get_unverified_header(tokens["refresh"])["kid"]
    with schema_context("acme"):
        public_jwk = SigningKey.objects.get(kid=kid).public_jwk

    forged = hs256(claims_of(tokens["refresh"]), json.dumps(public_jwk).encode(), kid)

    refresh_is_refused_and_rotates_nothing(tokens, forged)


def test_a_refresh_token_under_another_tenants_derived_key_is_refused(tokens, tenant_a, tenant_b):
    with tenant_context(tenant_b):
        globex_key = active_signing_key()
    kid = jwt.get_unverified_header(tokens["refresh"])["kid"]

    for named in (kid, globex_key.kid):
        refresh_is_refused_and_rotates_nothing(
            tokens, hs256(claims_of(tokens["refresh"]), globex_key.refresh_secret, named)
        )
        tokens = login_tokens(HOST, SHARED_ADMIN_EMAIL)


def test_an_access_token_hmac_signed_with_the_refresh_key_is_refused(tokens, tenant_a):
    with tenant_context(tenant_a):
        key = active_signing_key()

    assert_problem(whoami(hs256(claims_of(tokens["access"]), key.refresh_secret, key.kid)), 401, "invalid_token")


@pytest.mark.parametrize("raw", ["not.a.token", "x" * 100_000, "eyJhbGciOiJSUzI1NiJ9.e30.", "ä.ö.ü"])
def test_malformed_or_huge_tokens_get_401_not_500(tenant_a, raw):
    assert_problem(whoami(raw), 401, "invalid_token")
    assert_problem(refresh(raw), 401, "invalid_token")


def test_a_refresh_token_with_a_lone_surrogate_gets_401_not_500(tokens):
    with schema_context("acme"):
        before = DeviceSession.objects.get(pk=tokens["session_id"]).refresh_jti_hash
    client = APIClient(HTTP_HOST=HOST)
    surrogate = "\\ud800"  # as JSON escapes it
    for raw in [tokens["refresh"][:-1] + surrogate, surrogate + ".x.y"]:
        body = '{"refresh": "' + raw + '"}'
        response = client.post(REFRESH, data=body.encode(), content_type="application/json")

        assert_problem(response, 401, "invalid_token")
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=tokens["session_id"]).refresh_jti_hash == before  # not rotated


def test_an_authorization_header_that_is_not_bearer_is_not_authenticated(tenant_a):
    client = APIClient(HTTP_HOST=HOST, HTTP_AUTHORIZATION="Basic YWRtaW46cGFzc3dvcmQ=")

    assert_problem(client.get(WHOAMI), 401, "not_authenticated")


# --- verified once a minute per process ---------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch):
    """How many times a token was verified (the backend's decode: parsing, signature, claims)."""
    calls = []
    real = TenantTokenBackend.decode

    def counted(self, token, verify=True):
        calls.append(token.decode() if isinstance(token, bytes) else token)
        return real(self, token, verify)

    monkeypatch.setattr(TenantTokenBackend, "decode", counted)
    return calls


def test_an_access_token_is_verified_once_and_then_remembered_for_a_minute(tokens, decodes, monkeypatch):
    assert whoami(tokens["access"]).status_code == 200
    assert whoami(tokens["access"]).status_code == 200
    assert len(decodes) == 1

    now = time.time()
    monkeypatch.setattr("identity.tokens.time.time", lambda: now + VERIFIED_TTL_SECONDS + 1)
    assert whoami(tokens["access"]).status_code == 200
    assert len(decodes) == 2


def test_a_remembered_token_is_verified_again_once_its_exp_has_passed(tokens, tenant_a, decodes, monkeypatch):
    claims = claims_of(tokens["access"]) | {"exp": int(time.time()) + 5}
    short_lived = sign_with_acme_key(tenant_a, claims)
    assert whoami(short_lived).status_code == 200

    monkeypatch.setattr("identity.tokens.time.time", lambda: claims["exp"] + 0.5)  # within the minute
    whoami(short_lived)

    assert decodes == [short_lived, short_lived]


def test_a_token_remembered_at_its_own_tenant_is_still_refused_at_another(tenant_a, tenant_b):
    globex = login_tokens("globex.idp.test", SHARED_ADMIN_EMAIL)
    assert whoami(globex["access"], host="globex.idp.test").status_code == 200

    assert_problem(whoami(globex["access"]), 401, "invalid_token")


def test_a_remembered_token_of_an_ended_session_is_refused_at_once(tokens):
    assert whoami(tokens["access"]).status_code == 200
    with schema_context("acme"):
        sessions_end(list(DeviceSession.objects.filter(pk=tokens["session_id"])), reason=EndReason.ADMIN)

    assert_problem(whoami(tokens["access"]), 401, "session_ended")


def test_refresh_tokens_are_never_remembered(tokens, decodes):
    refresh(tokens["refresh"])
    assert_problem(refresh(tokens["refresh"]), 401, "token_reused")

    assert decodes == [tokens["refresh"], tokens["refresh"]]


# --- refresh, reuse, logout ----------------------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_is_then_reuse_that_ends_the_session(tokens, tenant_a):
    rotated = refresh(tokens["refresh"])
    assert rotated.status_code == 200, rotated.content
    new = rotated.json()
    assert new["session_id"] == tokens["session_id"]
    assert whoami(new["access"]).status_code == 200

    reused = refresh(tokens["refresh"])

    assert_problem(reused, 401, "token_reused")
    assert_problem(whoami(new["access"]), 401, "session_ended")
    assert_problem(refresh(new["refresh"]), 401, "session_ended")
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=tokens["session_id"]).end_reason == "refresh_reuse"
        assert AuditEvent.objects.filter(type="token.reused").count() == 1


def test_a_refreshed_access_token_carries_the_users_role_names_as_they_are_now(tokens, tenant_a):
    with schema_context("acme"):
        admin = User.objects.get(email=SHARED_ADMIN_EMAIL)
        branch = Branch.objects.create(external_id="b-7", name="Branch 7")
        role_assign(user=admin, role=Role.objects.get(name="Manager"), branch=branch, actor=None)
        role_assign(user=admin, role=Role.objects.get(name="Auditor"), branch=None, actor=None)
        role_assign(user=admin, role=Role.objects.get(name="Auditor"), branch=branch, actor=None)

    new = refresh(tokens["refresh"]).json()

    assert claims_of(new["access"])["roles"] == ["Admin", "Auditor", "Manager"]  # each name once, sorted


def test_refresh_records_the_next_token_hashed_and_points_the_session_at_it(tokens, tenant_a):
    new = refresh(tokens["refresh"]).json()

    next_hash = hashlib.sha256(claims_of(new["refresh"])["jti"].encode()).hexdigest()
    with schema_context("acme"):
        session = DeviceSession.objects.get(pk=tokens["session_id"])
        recorded = OutstandingToken.objects.get(jti=next_hash)
        used_hash = hashlib.sha256(claims_of(tokens["refresh"])["jti"].encode()).hexdigest()
        assert BlacklistedToken.objects.filter(token__jti=used_hash).exists()
        assert not BlacklistedToken.objects.filter(token=recorded).exists()
    assert session.refresh_jti_hash == next_hash
    assert recorded.token == ""  # only the hashed id is kept
    assert recorded.user_id == session.user_id
    assert int(recorded.expires_at.timestamp()) == claims_of(new["refresh"])["exp"]


def test_refresh_is_throttled_per_session_after_the_token_is_read(tokens):
    first = refresh(tokens["refresh"]).json()
    second = refresh(first["refresh"]).json()

    third = refresh(second["refresh"])

    assert_problem(third, 429, "throttled")
    assert "Retry-After" in third


def test_an_ended_session_answers_401_before_the_refresh_throttle(tokens):
    first = refresh(tokens["refresh"]).json()
    second = refresh(first["refresh"]).json()
    bearer_client(HOST, second["access"]).post("/api/v1/auth/logout/", {}, format="json")

    third = refresh(second["refresh"])  # over the limit of 2 a minute, and its session ended

    assert_problem(third, 401, "session_ended")
    assert "Retry-After" not in third


def test_a_deactivated_users_refresh_is_403_account_disabled(tokens):
    with schema_context("acme"):
        User.objects.filter(email=SHARED_ADMIN_EMAIL).update(is_active=False)

    assert_problem(refresh(tokens["refresh"]), 403, "account_disabled")
    assert_problem(whoami(tokens["access"]), 403, "account_disabled")


def test_a_suspended_tenants_tokens_are_refused(tokens, tenant_a):
    tenant_a.is_active = False
    tenant_a.save()

    assert_problem(refresh(tokens["refresh"]), 403, "tenant_inactive")
    assert_problem(whoami(tokens["access"]), 403, "tenant_inactive")


def test_a_session_past_its_absolute_limit_cannot_refresh(tokens):
    with schema_context("acme"):
        DeviceSession.objects.filter(pk=tokens["session_id"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_problem(refresh(tokens["refresh"]), 401, "session_ended")
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=tokens["session_id"]).end_reason == "expired"


def sign_refresh_with_acme_key(tenant, claims):
    """A refresh token signed as the IdP signs them, with whatever claims a test wants."""
    with tenant_context(tenant):
        key = active_signing_key()
    return hs256(claims, key.refresh_secret, key.kid)


def family_rows(session_id):
    """What a refresh may change: the session's row, the issued and the used tokens."""
    with schema_context("acme"):
        session = DeviceSession.objects.values().get(pk=session_id)
        return session, OutstandingToken.objects.count(), BlacklistedToken.objects.count()


def test_a_signed_refresh_token_naming_another_users_session_is_refused_and_changes_nothing(tokens, tenant_a):
    with schema_context("acme"):
        someone = User.objects.create_user(email="someone@example.com", password="Another-Pa55word")
    forged = sign_refresh_with_acme_key(tenant_a, claims_of(tokens["refresh"]) | {"sub": str(someone.pk)})
    before = family_rows(tokens["session_id"])

    assert_problem(refresh(forged), 401, "invalid_token")

    assert family_rows(tokens["session_id"]) == before
    assert refresh(tokens["refresh"]).status_code == 200


def test_a_signed_refresh_token_that_was_never_issued_is_refused_and_changes_nothing(tokens, tenant_a):
    forged = sign_refresh_with_acme_key(tenant_a, claims_of(tokens["refresh"]) | {"jti": "f" * 32})
    before = family_rows(tokens["session_id"])

    assert_problem(refresh(forged), 401, "invalid_token")

    assert family_rows(tokens["session_id"]) == before  # not ended: the token was never issued
    assert refresh(tokens["refresh"]).status_code == 200


def test_refreshes_of_two_tenants_on_one_connection_each_rotate_their_own_tenants_rows(tokens, tenant_b):
    # The rotation is a statement prepared once per connection: PostgreSQL must read it in
    # the schema of each request's tenant, never in the one it was prepared in.
    pairs = {"acme": tokens, "globex": login_tokens("globex.idp.test", SHARED_ADMIN_EMAIL)}
    prepares = 0
    for schema in ["acme", "globex", "acme", "globex"]:
        with CaptureQueriesContext(connection) as queries:
            fresh = refresh(pairs[schema]["refresh"], host=f"{schema}.idp.test")
        assert fresh.status_code == 200
        pairs[schema] = fresh.json()
        statements = [query["sql"].split()[0] for query in queries.captured_queries]
        assert statements.count("EXECUTE") == 1
        prepares += statements.count("PREPARE")
        with schema_context(schema):
            session = DeviceSession.objects.get(pk=pairs[schema]["session_id"])
            assert (
                session.refresh_jti_hash
                == hashlib.sha256(claims_of(fresh.json()["refresh"])["jti"].encode()).hexdigest()
            )
            assert BlacklistedToken.objects.count() == OutstandingToken.objects.count() - 1
    with schema_context("acme"):
        assert BlacklistedToken.objects.count() == 2
    assert prepares <= 1  # by the first of these refreshes, or before them on this connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'idp_refresh_rotate'")
        assert cursor.fetchone() == (1,)


def test_signing_after_the_rotation_reads_nothing_even_when_the_caches_expire_meanwhile(tokens, monkeypatch):
    import identity.services.tokens as token_services

    real_rotate = token_services.refresh_rotate

    def rotate_then_expire(**kwargs: Any) -> Any:
        rotation = real_rotate(**kwargs)
        forget_cached_keys()  # the active key and the token backends: as if 30 s had passed
        return rotation

    monkeypatch.setattr(token_services, "refresh_rotate", rotate_then_expire)
    with CaptureQueriesContext(connection) as queries:
        assert refresh(tokens["refresh"]).status_code == 200

    # The rotation commits by itself: nothing read after it could fail and burn the token.
    statements = [query["sql"].split()[0] for query in queries.captured_queries]
    assert "EXECUTE" in statements and statements.index("EXECUTE") == len(statements) - 1


def test_a_database_failure_before_the_rotation_leaves_the_refresh_token_usable(tokens, monkeypatch):
    import identity.tokens

    def unavailable() -> None:
        raise OperationalError("the database went away")

    forget_cached_keys()
    monkeypatch.setattr(identity.tokens, "active_signing_key", unavailable)
    before = family_rows(tokens["session_id"])

    assert_problem(refresh(tokens["refresh"]), 503, "service_unavailable")

    assert family_rows(tokens["session_id"]) == before
    monkeypatch.undo()
    assert refresh(tokens["refresh"]).status_code == 200


def test_a_refused_refresh_consumes_nothing_and_records_nothing(tokens):
    with schema_context("acme"):
        User.objects.filter(email=SHARED_ADMIN_EMAIL).update(is_active=False)
    before = family_rows(tokens["session_id"])

    assert_problem(refresh(tokens["refresh"]), 403, "account_disabled")

    assert family_rows(tokens["session_id"]) == before
    with schema_context("acme"):
        User.objects.filter(email=SHARED_ADMIN_EMAIL).update(is_active=True)
    assert refresh(tokens["refresh"]).status_code == 200  # the token was not used up


def test_logout_ends_the_session_for_access_and_refresh_tokens(tokens):
    response = bearer_client(HOST, tokens["access"]).post(
        "/api/v1/auth/logout/", {"refresh": tokens["refresh"]}, format="json"
    )

    assert response.status_code == 204
    assert_problem(whoami(tokens["access"]), 401, "session_ended")
    assert_problem(refresh(tokens["refresh"]), 401, "session_ended")


def test_logout_with_another_sessions_refresh_token_changes_nothing(tenant_a, tenant_a_admin):
    from tenants.policy import policy_validate

    tenant_a.policy = policy_validate({"sessions": {"max_sessions_per_user": 2}}, current=tenant_a.policy)
    tenant_a.save()
    phone = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="phone")
    till = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till")

    response = bearer_client(HOST, till["access"]).post(
        "/api/v1/auth/logout/", {"refresh": phone["refresh"]}, format="json"
    )

    assert_problem(response, 400, "invalid_token")
    assert whoami(till["access"]).status_code == 200
    assert whoami(phone["access"]).status_code == 200


def test_twenty_concurrent_refreshes_of_one_token_let_at_most_one_through(committed_tenant):
    host = "racing.idp.test"
    tokens = on_own_connection(lambda: login_tokens(host, SHARED_ADMIN_EMAIL))

    statuses = in_parallel(lambda: refresh(tokens["refresh"], host=host).status_code, 20)

    assert statuses.count(200) <= 1
    assert set(statuses) <= {200, 401}


# --- keys ------------------------------------------------------------------------------------


def test_rotation_keeps_old_tokens_valid_and_publishes_both_keys(tokens, tenant_a):
    old_kid = jwt.get_unverified_header(tokens["access"])["kid"]

    call_command("rotate_signing_key", tenant="acme", stdout=open("/dev/null", "w"))  # noqa: SIM115
    forget_cached_keys()
    fresh = refresh(tokens["refresh"]).json()

    new_kid = jwt.get_unverified_header(fresh["access"])["kid"]
    published = {key["kid"] for key in APIClient(HTTP_HOST=HOST).get("/.well-known/jwks.json").json()["keys"]}
    assert new_kid != old_kid
    assert {old_kid, new_kid} <= published
    assert whoami(tokens["access"]).status_code in {200, 401}  # the old session was rotated: see below
    assert whoami(fresh["access"]).status_code == 200
    with schema_context("acme"):
        retired = SigningKey.objects.get(kid=old_kid)
        assert retired.retired_at is not None and retired.publish_until is not None
        assert retired.publish_until >= retired.retired_at + timedelta(days=30)
        assert AuditEvent.objects.filter(type="signing_key.rotated").exists()


def test_a_token_signed_before_a_rotation_is_still_accepted(tokens, tenant_a):
    call_command("rotate_signing_key", tenant="acme", stdout=open("/dev/null", "w"))  # noqa: SIM115
    forget_cached_keys()

    assert whoami(tokens["access"]).status_code == 200


def test_a_key_past_its_publication_is_neither_published_nor_accepted(tokens, tenant_a):
    old_kid = jwt.get_unverified_header(tokens["access"])["kid"]
    call_command("rotate_signing_key", tenant="acme", stdout=open("/dev/null", "w"))  # noqa: SIM115
    with schema_context("acme"):
        SigningKey.objects.filter(kid=old_kid).update(publish_until=timezone.now() - timedelta(seconds=1))
    forget_cached_keys()

    published = {key["kid"] for key in APIClient(HTTP_HOST=HOST).get("/.well-known/jwks.json").json()["keys"]}

    assert old_kid not in published
    assert_problem(whoami(tokens["access"]), 401, "invalid_token")


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_a_tenant_can_sign_with_es256_or_eddsa_and_older_tokens_stay_valid(
    tokens, tenant_a, operator_client, algorithm
):
    response = operator_client.patch(
        "/api/v1/platform/tenants/acme/", {"policy": {"tokens": {"algorithm": algorithm}}}, format="json"
    )
    assert response.status_code == 200
    forget_cached_keys()

    fresh = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="pos-2")

    assert jwt.get_unverified_header(fresh["access"])["alg"] == algorithm
    assert whoami(fresh["access"]).status_code == 200
    published = {key["alg"] for key in APIClient(HTTP_HOST=HOST).get("/.well-known/jwks.json").json()["keys"]}
    assert {"RS256", algorithm} <= published


# --- the unverified type, which only chooses the class that verifies --------------------------


def test_the_unverified_token_type_is_read_from_str_and_bytes(tokens):
    assert token_type_unverified(tokens["access"]) == "access"
    assert token_type_unverified(tokens["refresh"].encode()) == "refresh"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "a.b",
        "a.b.c.d",
        "x.!!!.y",
        "x." + b64(b"[1, 2]") + ".y",
        "x." + b64(json.dumps({"token_type": 3}).encode()) + ".y",
        "ä.ö.ü",
        "x." + b64(json.dumps({"token_type": "access", "pad": "a" * 9000}).encode()) + ".y",
    ],
)
def test_anything_but_a_jwt_naming_its_type_has_no_unverified_type(raw):
    assert token_type_unverified(raw) is None
