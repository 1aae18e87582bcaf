from django.contrib.auth.hashers import MD5PasswordHasher


class CountingMD5Hasher(MD5PasswordHasher):
    """Counts password checks, to show that unknown emails cost a check too."""

    algorithm = "md5"
    verifications = 0

    def verify(self, password: str, encoded: str) -> bool:
        CountingMD5Hasher.verifications += 1
        return super().verify(password, encoded)
