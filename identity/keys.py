"""Each tenant's token signing keys: generation, encryption at rest, rotation, JWKS.

Private keys are stored encrypted with IDP_KEY_ENCRYPTION_KEYS (Fernet; the first key
encrypts, all of them decrypt, so the encryption key itself can be rotated) and are never
served. A rotated key stops signing at once and stays published, and usable for
verification, until every token it signed has expired.

Refresh tokens are read by the IdP alone, so they are signed with HMAC (HS256) under a key
derived from the signing key's private key (HKDF-SHA256): as secret as the private key,
rotated with it, named by the same `kid`, and without an RSA signature per refresh
(decision 43).
"""

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from core.tenancy import current_schema
from identity.models import SigningKey
from identity.services.audit import audit_record

# How long a process trusts its idea of the active key before asking the database again.
# A rotation in another process is picked up within this time; tokens signed meanwhile with
# the previous key stay valid (it is still published).
ACTIVE_KEY_TTL_SECONDS = 30

# Refresh tokens: HMAC-SHA256 under a key derived from the signing key's private key.
REFRESH_ALGORITHM = "HS256"
_REFRESH_KEY_INFO = b"idp refresh-token hmac v1"


_JWK_CONVERTERS: dict[str, Any] = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    algorithm: str
    private_key: Any  # None for keys loaded only to verify
    public_key: Any
    refresh_secret: bytes | None  # None for keys loaded only to verify


_by_kid: dict[tuple[str, str], LoadedKey] = {}
_active: dict[str, tuple[float, LoadedKey]] = {}
_refresh_secrets: dict[tuple[str, str], bytes] = {}


def _fernet() -> MultiFernet:
    configured = settings.IDP_KEY_ENCRYPTION_KEYS
    if configured:
        return MultiFernet([Fernet(key) for key in configured])
    # Development and tests: derived from SECRET_KEY (production settings require real keys).
    derived = base64.urlsafe_b64encode(hashlib.sha256(b"idp-signing-keys:" + settings.SECRET_KEY.encode()).digest())
    return MultiFernet([Fernet(derived)])


def _generate(algorithm: str) -> Any:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"Unsupported signing algorithm {algorithm!r}")


def _public_jwk(public_key: Any, algorithm: str, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = _JWK_CONVERTERS[algorithm].to_jwk(public_key, as_dict=True)
    return jwk | {"kid": kid, "alg": algorithm, "use": "sig"}


def _max_token_lifetime(policy: dict[str, Any]) -> timedelta:
    tokens = policy["tokens"]
    return max(timedelta(minutes=tokens["access_minutes"]), timedelta(days=tokens["refresh_absolute_days"]))


def _policy() -> dict[str, Any]:
    tenant = getattr(connection, "tenant", None)
    if tenant is None or not hasattr(tenant, "effective_policy"):
        raise RuntimeError("Signing keys are used inside a tenant's (or the public) schema context")
    return tenant.effective_policy


@transaction.atomic
def signing_key_rotate(*, algorithm: str | None = None, reason: str = "rotation") -> SigningKey:
    """Create a new signing key in the current schema and retire the active ones.

    Retired keys stay published until the longest-lived token they may have signed expires.
    Every new key is a `signing_key.rotated` audit event (kids and algorithm, never key
    material); `reason` says why: "rotation" (the command), "first_key" (a new tenant) or
    "algorithm_change" (the policy's algorithm has no key yet).
    """
    if current_schema() == settings.TENANT_BASE_SCHEMA:
        # The template is cloned into every new tenant: a key there would be shared by all.
        raise RuntimeError("The tenant template schema never holds a signing key")
    with connection.cursor() as cursor:  # one rotation at a time per schema
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{current_schema()}:signing_key"])
    policy = _policy()
    algorithm = algorithm or policy["tokens"]["algorithm"]
    now = timezone.now()
    retiring = SigningKey.objects.filter(retired_at__isnull=True)
    retired = sorted(retiring.values_list("kid", flat=True))
    retiring.update(retired_at=now, publish_until=now + _max_token_lifetime(policy))
    private_key = _generate(algorithm)
    kid = secrets.token_urlsafe(16)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = SigningKey.objects.create(
        kid=kid,
        algorithm=algorithm,
        private_key_encrypted=_fernet().encrypt(pem).decode(),
        public_jwk=_public_jwk(private_key.public_key(), algorithm, kid),
    )
    _active.pop(current_schema(), None)
    audit_record(
        type="signing_key.rotated",
        target=key,
        target_id=kid,
        data={"alg": algorithm, "retired": retired, "reason": reason},
    )
    return key


def _load(key: SigningKey, with_private: bool) -> LoadedKey:
    private_key = refresh_secret = None
    if with_private:
        pem = _fernet().decrypt(key.private_key_encrypted.encode())
        private_key = serialization.load_pem_private_key(pem, password=None)
        public_key = private_key.public_key()
        refresh_secret = _refresh_secret_of(private_key)
    else:
        public_key = _JWK_CONVERTERS[key.algorithm].from_jwk(key.public_jwk)
    return LoadedKey(
        kid=key.kid,
        algorithm=key.algorithm,
        private_key=private_key,
        public_key=public_key,
        refresh_secret=refresh_secret,
    )


def _refresh_secret_of(private_key: Any) -> bytes:
    """The HMAC key of refresh tokens signed under `private_key`'s kid: 32 bytes of HKDF over
    the private key, with an `info` of its own so the derived key serves nothing else."""
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_REFRESH_KEY_INFO).derive(der)


def active_signing_key() -> LoadedKey:
    """The key new tokens are signed with in the current schema: the newest unretired key of
    the policy's algorithm. A tenant without one (new, or just switched algorithm) gets one."""
    schema = current_schema()
    cached = _active.get(schema)
    if cached and time.monotonic() - cached[0] < ACTIVE_KEY_TTL_SECONDS:
        return cached[1]
    algorithm = _policy()["tokens"]["algorithm"]
    key = SigningKey.objects.filter(retired_at__isnull=True, algorithm=algorithm).first()
    if key is None:
        key = signing_key_rotate(algorithm=algorithm, reason="algorithm_change")
    loaded = _load(key, with_private=True)
    _active[schema] = (time.monotonic(), loaded)
    _by_kid[(schema, loaded.kid)] = loaded
    if loaded.refresh_secret is not None:
        _refresh_secrets[(schema, loaded.kid)] = loaded.refresh_secret
    return loaded


def verification_key(kid: str) -> LoadedKey | None:
    """The public key for `kid` in the current schema, or None when this tenant never had such
    a key or no longer publishes it. A key from another tenant is never found here."""
    schema = current_schema()
    loaded = _by_kid.get((schema, kid))
    if loaded is not None:
        return loaded
    key = SigningKey.objects.filter(kid=kid).filter(published()).first()
    if key is None:
        return None
    loaded = _load(key, with_private=False)
    _by_kid[(schema, kid)] = loaded
    return loaded


def refresh_secret(kid: str) -> bytes | None:
    """The HMAC key of refresh tokens signed under `kid` in the current schema, or None when
    this tenant never had such a key or no longer publishes it (its tokens have expired)."""
    schema = current_schema()
    secret = _refresh_secrets.get((schema, kid))
    if secret is None:
        key = SigningKey.objects.filter(kid=kid).filter(published()).first()
        secret = _load(key, with_private=True).refresh_secret if key is not None else None
        if secret is not None:
            _refresh_secrets[(schema, kid)] = secret
    return secret


def published() -> Q:
    return Q(publish_until__isnull=True) | Q(publish_until__gt=timezone.now())


def jwks() -> dict[str, list[dict[str, Any]]]:
    active_signing_key()  # a tenant publishes a key before it has issued any token
    return {"keys": [key.public_jwk for key in SigningKey.objects.filter(published())]}


def forget_cached_keys() -> None:
    """Drop this process's loaded keys, token backends and verified tokens (tests, and after a
    rotation in this process)."""
    from identity.tokens import TenantToken, _verified

    _by_kid.clear()
    _active.clear()
    _refresh_secrets.clear()
    TenantToken._backends.clear()
    _verified.clear()
