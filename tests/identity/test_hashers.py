"""People's passwords: argon2id with the deployment's costs (identity.hashers.TunedArgon2idHasher)."""

import os
import subprocess
import sys
import threading
import time

import pytest
from argon2 import extract_parameters
from django.contrib.auth.hashers import (
    Argon2PasswordHasher,
    check_password,
    get_hasher,
    identify_hasher,
    make_password,
)
from django.core.exceptions import ImproperlyConfigured

from config.env import argon2_costs_check
from config.settings import base
from identity.hashers import TunedArgon2idHasher

TUNED = "identity.hashers.TunedArgon2idHasher"
DJANGO_ARGON2 = "django.contrib.auth.hashers.Argon2PasswordHasher"
PASSWORD = "Correct-Horse-9!"


@pytest.fixture
def production_hashers(settings):
    """The production list (the tests otherwise hash with MD5, for speed)."""
    settings.PASSWORD_HASHERS = base.PASSWORD_HASHERS
    settings.IDP_ARGON2_TIME_COST = base.IDP_ARGON2_TIME_COST
    settings.IDP_ARGON2_MEMORY_COST_KIB = base.IDP_ARGON2_MEMORY_COST_KIB
    settings.IDP_ARGON2_PARALLELISM = base.IDP_ARGON2_PARALLELISM
    return settings


def argon2_costs(encoded: str) -> tuple[str, int, int, int]:
    _, rest = encoded.split("$", 1)
    params = extract_parameters("$" + rest)
    return params.type.name, params.time_cost, params.memory_cost, params.parallelism


def test_the_default_password_hash_is_argon2id_with_djangos_memory_and_passes_in_one_lane(production_hashers):
    encoded = make_password(PASSWORD)

    assert encoded.startswith("argon2id$argon2id$")
    assert argon2_costs(encoded) == ("ID", 2, 102400, 1)
    assert check_password(PASSWORD, encoded)
    assert not check_password("Wrong-Horse-9!", encoded)


def test_the_costs_follow_the_deployments_settings(production_hashers):
    production_hashers.IDP_ARGON2_TIME_COST = 3
    production_hashers.IDP_ARGON2_MEMORY_COST_KIB = 32768
    production_hashers.IDP_ARGON2_PARALLELISM = 2

    assert argon2_costs(make_password(PASSWORD)) == ("ID", 3, 32768, 2)


def test_a_hash_made_with_other_costs_still_verifies_and_is_due_for_a_rehash(production_hashers):
    production_hashers.IDP_ARGON2_TIME_COST = 3
    older = make_password(PASSWORD)
    production_hashers.IDP_ARGON2_TIME_COST = 2

    assert check_password(PASSWORD, older)
    assert get_hasher().must_update(older)
    assert not get_hasher().must_update(make_password(PASSWORD))


def test_a_hash_made_by_djangos_argon2_verifies_and_is_rehashed_with_the_tuned_costs(production_hashers):
    old = make_password(PASSWORD, hasher="argon2")
    assert identify_hasher(old).algorithm == "argon2"
    rehashed: list[str] = []

    assert check_password(PASSWORD, old, setter=lambda raw: rehashed.append(make_password(raw)))

    assert len(rehashed) == 1
    assert argon2_costs(rehashed[0]) == ("ID", 2, 102400, 1)
    assert check_password(PASSWORD, rehashed[0])


@pytest.mark.parametrize(
    ("time_cost", "memory_cost_kib", "parallelism"),
    [(2, 19456, 1), (1, 47104, 1), (4, 65536, 4)],
    ids=["owasp-minimum", "owasp-46-mib-one-pass", "stronger"],
)
def test_costs_at_or_above_owasps_minimum_are_accepted(time_cost, memory_cost_kib, parallelism):
    argon2_costs_check(time_cost=time_cost, memory_cost_kib=memory_cost_kib, parallelism=parallelism)


@pytest.mark.parametrize(
    ("time_cost", "memory_cost_kib", "parallelism"),
    [(1, 19456, 1), (2, 16384, 1), (0, 65536, 1), (2, 65536, 0), (2, 19456, 4096)],
    ids=["one-pass-of-19-mib", "16-mib", "no-pass", "no-lane", "less-memory-than-lanes-need"],
)
def test_costs_below_owasps_minimum_are_refused(time_cost, memory_cost_kib, parallelism):
    with pytest.raises(ImproperlyConfigured, match="IDP_ARGON2"):
        argon2_costs_check(time_cost=time_cost, memory_cost_kib=memory_cost_kib, parallelism=parallelism)


def test_the_settings_read_the_costs_from_the_environment_and_refuse_weak_ones():
    def settings_with(**environment: str) -> subprocess.CompletedProcess[str]:
        code = (
            "from config.settings import base; "
            "print(base.IDP_ARGON2_TIME_COST, base.IDP_ARGON2_MEMORY_COST_KIB, base.IDP_ARGON2_PARALLELISM)"
        )
        return subprocess.run(  # noqa: S603  # this interpreter, a fixed program
            [sys.executable, "-c", code], env=os.environ | environment, capture_output=True, text=True, check=False
        )

    tuned = settings_with(IDP_ARGON2_TIME_COST="3", IDP_ARGON2_MEMORY_COST_KIB="65536", IDP_ARGON2_PARALLELISM="2")
    weak = settings_with(IDP_ARGON2_MEMORY_COST_KIB="4096")

    assert tuned.returncode == 0, tuned.stderr
    assert tuned.stdout.split() == ["3", "65536", "2"]
    assert weak.returncode != 0
    assert "below OWASP's minimum" in weak.stderr


# --- how many hashes one process computes at a time ------------------------------------------


@pytest.mark.parametrize("limit", [1, 2])
@pytest.mark.parametrize("operation", ["encode", "verify"])
def test_a_process_hashes_at_most_its_concurrency_at_a_time(settings, monkeypatch, limit, operation):
    settings.IDP_ARGON2_CONCURRENCY = limit
    running, peak, lock = [0], [0], threading.Lock()

    def slow(self, *args):  # stands for the argon2 computation, long enough for the threads to meet
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return True

    monkeypatch.setattr(Argon2PasswordHasher, operation, slow)
    hasher = TunedArgon2idHasher()
    threads = [threading.Thread(target=getattr(hasher, operation), args=(PASSWORD, "somesalt")) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak[0] == limit


def test_a_concurrency_below_one_stops_the_start_up():
    code = "from config.settings import base; print(base.IDP_ARGON2_CONCURRENCY)"
    run = subprocess.run(  # noqa: S603  # this interpreter, a fixed program
        [sys.executable, "-c", code],
        env=os.environ | {"IDP_ARGON2_CONCURRENCY": "0"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode != 0
    assert "IDP_ARGON2_CONCURRENCY must be at least 1" in run.stderr
