"""A password hasher for service-client secrets only (never for people's passwords).

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
from typing import Any

from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare

CLIENT_SECRET_HASHER = "client_secret_sha256"


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
