"""The password hashers of this project: argon2id for people's passwords, with its cost set
per deployment, and a fast hasher for service-client secrets only.

## People's passwords: TunedArgon2idHasher

Django's Argon2PasswordHasher has fixed costs (t=2, m=100 MiB, p=8 in Django 5.2). Here the
costs come from the environment (IDP_ARGON2_TIME_COST, IDP_ARGON2_MEMORY_COST_KIB,
IDP_ARGON2_PARALLELISM; config/settings/base.py refuses anything weaker than OWASP's minimum,
t=2 with m=19 MiB, counted as memory x passes). The default keeps the memory and passes of
Django's default, which this project used until the costs became settings (t=2, m=100 MiB:
five times OWASP's minimum), in one lane (p=1) instead of eight: a login then costs one core
for one hash and never takes a second core from other requests, so a deployment knows its
login capacity (cores / time of one hash; `make bench` measures it: about 110 ms, 9 logins/s
per core on the benchmark machine) and can lower the cost towards OWASP's minimum (about
20 ms) where logins matter more than the margin above it.

Its algorithm name is "argon2id", not Django's "argon2", so that both can be installed:
Django's hasher stays in PASSWORD_HASHERS to verify hashes made before (by Django's costs),
and Django rehashes such a password with this one at the next successful login. A hash of
this hasher made with other costs is rehashed too (`must_update`), in both directions, so a
change of IDP_ARGON2_* reaches every account that logs in.

## Service-client secrets: ClientSecretSHA256Hasher

Why not Argon2 or PBKDF2 like user passwords: a slow hash protects a secret that a person
chose, so that a stolen table cannot be searched with a dictionary. A client secret is 32
random bytes made by `secrets`: there is no dictionary, and 2**256 guesses stay out of reach
with any hash. A slow hash would only cap how many client-credentials grants a core can
answer (Argon2 costs tens of milliseconds each; the service-token endpoint is meant for
hundreds per second per core). So a secret is kept as a salted SHA-256, through Django's
hasher API (`make_password(secret, hasher="client_secret_sha256")`, `check_password`) so
that the format names its algorithm and could be upgraded later.

It is registered last in PASSWORD_HASHERS: the first entry stays the default for users, and
`check_password` finds this one only for values that name it.
"""

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher, BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare

CLIENT_SECRET_HASHER = "client_secret_sha256"
ARGON2ID_HASHER = "argon2id"


_slots: dict[int, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


@contextmanager
def _hashing_slot() -> Iterator[None]:
    """One of this process's IDP_ARGON2_CONCURRENCY hashing slots, waited for. A web process
    runs several threads (deploy/gunicorn.conf.py), and one per core; without the limit,
    four concurrent logins in a process hash four times 100 MiB at once on a core or two,
    each slower for the others (memory bandwidth, caches) and the process's memory four
    hashes deep. Logins then wait their turn instead: the same throughput per core, or
    better, and a bounded memory."""
    limit = int(settings.IDP_ARGON2_CONCURRENCY)
    with _slots_lock:
        slots = _slots.setdefault(limit, threading.BoundedSemaphore(limit))
    with slots:
        yield


class TunedArgon2idHasher(Argon2PasswordHasher):
    """argon2id with the deployment's costs (settings.IDP_ARGON2_*), read at every use so that
    a test's settings override applies. Verification reads the costs from the hash itself.
    Hashing and verifying each take one of the process's hashing slots (_hashing_slot)."""

    algorithm = ARGON2ID_HASHER

    def encode(self, password: str, salt: str) -> str:
        with _hashing_slot():
            return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        with _hashing_slot():
            return super().verify(password, encoded)

    def params(self) -> Any:
        """Django's parameters (argon2id, version, salt and hash lengths) with our costs."""
        params = super().params()
        params.time_cost = int(settings.IDP_ARGON2_TIME_COST)
        params.memory_cost = int(settings.IDP_ARGON2_MEMORY_COST_KIB)
        params.parallelism = int(settings.IDP_ARGON2_PARALLELISM)
        return params


class ClientSecretSHA256Hasher(BasePasswordHasher):
    algorithm = CLIENT_SECRET_HASHER

    def encode(self, password: str, salt: str) -> str:
        if password is None or not salt or "$" in salt:
            raise ValueError("A secret and a salt without '$' are required.")
        digest = hashlib.sha256(f"{salt}${password}".encode()).hexdigest()
        return f"{self.algorithm}${salt}${digest}"

    def decode(self, encoded: str) -> dict[str, Any]:
        algorithm, salt, digest = encoded.split("$", 2)
        assert algorithm == self.algorithm  # noqa: S101  # Django's hashers check the same way
        return {"algorithm": algorithm, "hash": digest, "salt": salt}

    def verify(self, password: str, encoded: str) -> bool:
        decoded = self.decode(encoded)
        return constant_time_compare(encoded, self.encode(password, decoded["salt"]))

    def safe_summary(self, encoded: str) -> dict[Any, Any]:
        decoded = self.decode(encoded)
        return {
            "algorithm": decoded["algorithm"],
            "salt": mask_hash(decoded["salt"]),
            "hash": mask_hash(decoded["hash"]),
        }

    def must_update(self, encoded: str) -> bool:
        return False

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass  # one SHA-256 costs the same for every secret: nothing to even out
