"""Reading deployment settings from the environment, with types and clear failures."""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


# OWASP's minimum for argon2id (Password Storage Cheat Sheet): 19 MiB and 2 passes, 1 lane.
# Its other configurations trade memory for passes; memory x passes is what an attacker pays.
ARGON2_MIN_MEMORY_X_PASSES_KIB = 19456 * 2


def argon2_costs_check(*, time_cost: int, memory_cost_kib: int, parallelism: int) -> None:
    """Refuse argon2id costs weaker than OWASP's minimum (or that argon2 cannot take)."""
    if time_cost < 1 or parallelism < 1 or memory_cost_kib < 8 * parallelism:
        raise ImproperlyConfigured(
            "IDP_ARGON2_TIME_COST and IDP_ARGON2_PARALLELISM must be at least 1, and "
            "IDP_ARGON2_MEMORY_COST_KIB at least 8 x IDP_ARGON2_PARALLELISM."
        )
    if memory_cost_kib * time_cost < ARGON2_MIN_MEMORY_X_PASSES_KIB:
        raise ImproperlyConfigured(
            f"IDP_ARGON2_MEMORY_COST_KIB x IDP_ARGON2_TIME_COST is {memory_cost_kib * time_cost}: "
            f"below OWASP's minimum for argon2id ({ARGON2_MIN_MEMORY_X_PASSES_KIB}, i.e. 19 MiB x 2 passes)."
        )
