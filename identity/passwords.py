"""The one password validator: registration, reset, change and admin-set passwords all use it,
with the rules of the tenant's policy ("password" section)."""

import secrets
import string
from typing import Any

from core.errors import ErrorCode, ProblemError

SPECIALS = "!@#$%^&*()-_=+[]{};:,.<>/?~|"


def password_problems(password: str, rules: dict[str, Any]) -> list[str]:
    """Each rule the password breaks, as a message a person can act on."""
    problems = []
    if len(password) < rules["min_length"]:
        problems.append(f"Use at least {rules['min_length']} characters.")
    if len(password) > 256:
        problems.append("Use at most 256 characters.")
    if rules["require_upper"] and not any(c.isupper() for c in password):
        problems.append("Add an upper-case letter.")
    if rules["require_lower"] and not any(c.islower() for c in password):
        problems.append("Add a lower-case letter.")
    if rules["require_digit"] and not any(c.isdigit() for c in password):
        problems.append("Add a digit.")
    if rules["require_special"] and all(c.isalnum() for c in password):
        problems.append("Add a special character such as ! or #.")
    return problems


def password_validate(password: str, *, rules: dict[str, Any], field: str = "password") -> None:
    problems = password_problems(password, rules)
    if problems:
        raise ProblemError(
            ErrorCode.PASSWORD_POLICY, "The password does not meet the tenant's policy.", errors={field: problems}
        )


def password_generate(rules: dict[str, Any]) -> str:
    """A random password that satisfies any policy within bounds (at least 16 characters)."""
    length = max(16, rules["min_length"])
    alphabet = string.ascii_letters + string.digits + SPECIALS
    required = [
        secrets.choice(string.ascii_uppercase),
        secrets.choice(string.ascii_lowercase),
        secrets.choice(string.digits),
        secrets.choice(SPECIALS),
    ]
    rest = [secrets.choice(alphabet) for _ in range(length - len(required))]
    chars = required + rest
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
