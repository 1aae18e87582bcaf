"""Unit tests for tenants/policy.py: the tenant policy's shape, defaults, bounds and merging.

Pure functions only; the database these tests receive comes from the autouse fixture in
tests/conftest.py, not from anything they need.
"""

import copy
from typing import Any

import pytest
from rest_framework import serializers

from core.problems import flatten_errors
from tenants.models import Tenant
from tenants.policy import (
    CLAIMABLE_PROFILE_FIELDS,
    DEFAULT_POLICY,
    PolicySerializer,
    merge_policy,
    merged_with_defaults,
    parse_rate,
    policy_validate,
)

PRISTINE_DEFAULTS = copy.deepcopy(DEFAULT_POLICY)


def refusal_paths(changes: Any, **kwargs: Any) -> dict[str, list[str]]:
    """Run policy_validate expecting a refusal; return the flattened field paths of the error."""
    with pytest.raises(serializers.ValidationError) as caught:
        policy_validate(changes, **kwargs)
    return flatten_errors(caught.value.detail)


@pytest.fixture(autouse=True)
def _defaults_are_never_mutated() -> Any:
    yield
    assert DEFAULT_POLICY == PRISTINE_DEFAULTS


# --- Defaults ------------------------------------------------------------------------------


def test_validating_none_returns_exactly_the_defaults() -> None:
    assert policy_validate(None) == DEFAULT_POLICY


def test_validating_an_empty_object_returns_exactly_the_defaults() -> None:
    assert policy_validate({}) == DEFAULT_POLICY


def test_the_result_is_a_copy_so_changing_it_leaves_the_defaults_alone() -> None:
    result = policy_validate({})
    result["lockout"]["threshold"] = 99
    result["extra_claims"].append("phone")
    result["tokens"]["audiences"].append("pos")
    assert DEFAULT_POLICY == PRISTINE_DEFAULTS


def test_the_result_is_made_of_plain_json_types() -> None:
    result = policy_validate({"tokens": {"audiences": ["pos"]}})
    assert type(result) is dict
    assert all(type(section) in (dict, list) for section in result.values())
    assert type(result["tokens"]) is dict
    assert type(result["tokens"]["audiences"]) is list


def test_the_defaults_match_the_shape_documented_in_api_md() -> None:
    assert DEFAULT_POLICY == {
        "password": {
            "min_length": 8,
            "require_upper": True,
            "require_lower": True,
            "require_digit": True,
            "require_special": True,
        },
        "lockout": {"threshold": 5, "window_minutes": 15, "duration_minutes": 15},
        "tokens": {
            "access_minutes": 30,
            "refresh_days": 7,
            "refresh_absolute_days": 30,
            "algorithm": "RS256",
            "audiences": [],
        },
        "sessions": {"max_sessions_per_user": 1, "on_limit": "terminate_oldest"},
        "rate_limits": {
            "login": "5/min",
            "registration": "10/hour",
            "password_reset": "3/min",
            "password_reset_confirm": "10/hour",
            "refresh": "2/min",
        },
        "registration": {"open": True, "default_role": "Employee", "assignable_roles": []},
        # Added here beside API.md's shape: may the tenant edit the system roles' codes?
        "roles": {"system_roles_editable": False},
        "extra_claims": ["employee_id", "branch_id", "restaurant_id"],
        "cors_origins": [],
        # Added beside API.md's shape: the suspicious-activity rules and IP blocks (docs/audit.md).
        "security": {
            "block_minutes": 60,
            "accounts_threshold": 10,
            "accounts_window_minutes": 10,
            "burst_threshold": 20,
            "burst_seconds": 10,
            "block_on": ["failed_logins_across_accounts", "failed_login_burst"],
            "exempt_networks": [],
        },
    }


def test_the_defaults_pass_the_policy_serializer_on_their_own() -> None:
    serializer = PolicySerializer(data=copy.deepcopy(DEFAULT_POLICY), context={})
    assert serializer.is_valid(), serializer.errors


# --- Per-section merging -------------------------------------------------------------------


def test_changing_the_lockout_threshold_keeps_the_other_lockout_keys_from_current() -> None:
    current = policy_validate({"lockout": {"threshold": 7, "window_minutes": 30, "duration_minutes": 60}})
    result = policy_validate({"lockout": {"threshold": 3}}, current=current)
    assert result["lockout"] == {"threshold": 3, "window_minutes": 30, "duration_minutes": 60}


def test_changing_the_lockout_threshold_without_current_keeps_the_default_lockout_keys() -> None:
    result = policy_validate({"lockout": {"threshold": 3}})
    assert result["lockout"] == {"threshold": 3, "window_minutes": 15, "duration_minutes": 15}


def test_merging_onto_current_keeps_the_sections_of_current_that_were_not_changed() -> None:
    current = policy_validate(
        {
            "password": {"min_length": 12},
            "tokens": {"access_minutes": 10, "algorithm": "ES256"},
            "cors_origins": ["https://pos.example.com"],
            "extra_claims": ["phone"],
        }
    )
    result = policy_validate({"lockout": {"threshold": 3}}, current=current)
    assert result["password"]["min_length"] == 12
    assert result["tokens"]["access_minutes"] == 10
    assert result["tokens"]["algorithm"] == "ES256"
    assert result["cors_origins"] == ["https://pos.example.com"]
    assert result["extra_claims"] == ["phone"]
    assert result["lockout"]["threshold"] == 3
    assert {key: value for key, value in result.items() if key != "lockout"} == {
        key: value for key, value in current.items() if key != "lockout"
    }


def test_a_partial_current_policy_gets_the_defaults_for_whatever_it_lacks() -> None:
    current = {"lockout": {"threshold": 9}}
    result = policy_validate({}, current=current)
    assert result["lockout"] == {"threshold": 9, "window_minutes": 15, "duration_minutes": 15}
    assert result["password"] == DEFAULT_POLICY["password"]


def test_extra_claims_are_replaced_not_appended() -> None:
    current = policy_validate({"extra_claims": ["employee_id", "branch_id"]})
    result = policy_validate({"extra_claims": ["phone"]}, current=current)
    assert result["extra_claims"] == ["phone"]


def test_cors_origins_are_replaced_not_appended() -> None:
    current = policy_validate({"cors_origins": ["https://a.example.com", "https://b.example.com"]})
    result = policy_validate({"cors_origins": ["https://c.example.com"]}, current=current)
    assert result["cors_origins"] == ["https://c.example.com"]


def test_an_empty_list_clears_cors_origins() -> None:
    current = policy_validate({"cors_origins": ["https://a.example.com"]})
    assert policy_validate({"cors_origins": []}, current=current)["cors_origins"] == []


def test_a_list_inside_a_section_is_replaced_not_appended() -> None:
    current = policy_validate({"tokens": {"audiences": ["pos", "kds"]}})
    result = policy_validate({"tokens": {"audiences": ["web"]}}, current=current)
    assert result["tokens"]["audiences"] == ["web"]


def test_validation_never_mutates_the_current_policy() -> None:
    current = policy_validate({"cors_origins": ["https://a.example.com"], "tokens": {"audiences": ["pos"]}})
    snapshot = copy.deepcopy(current)
    policy_validate(
        {
            "lockout": {"threshold": 3},
            "cors_origins": ["https://b.example.com"],
            "tokens": {"audiences": ["web"]},
        },
        current=current,
    )
    assert current == snapshot


def test_a_refused_change_never_mutates_the_current_policy() -> None:
    current = policy_validate({"lockout": {"threshold": 7}})
    snapshot = copy.deepcopy(current)
    refusal_paths({"lockout": {"threshold": 0}, "cors_origins": ["*"]}, current=current)
    assert current == snapshot


def test_validation_never_mutates_the_changes() -> None:
    changes = {"lockout": {"threshold": 3}, "extra_claims": ["phone"]}
    snapshot = copy.deepcopy(changes)
    policy_validate(changes)
    assert changes == snapshot


def test_merge_policy_updates_only_the_named_keys_of_an_object_section() -> None:
    base = {"lockout": {"threshold": 5, "window_minutes": 15}, "extra_claims": ["a"]}
    merged = merge_policy(base, {"lockout": {"threshold": 3}})
    assert merged == {"lockout": {"threshold": 3, "window_minutes": 15}, "extra_claims": ["a"]}


def test_merge_policy_replaces_a_list_section() -> None:
    merged = merge_policy({"extra_claims": ["a", "b"]}, {"extra_claims": ["c"]})
    assert merged == {"extra_claims": ["c"]}


def test_merge_policy_changes_neither_argument() -> None:
    base = {"lockout": {"threshold": 5}, "cors_origins": ["https://a.example.com"]}
    changes = {"lockout": {"threshold": 3}, "cors_origins": ["https://b.example.com"]}
    base_snapshot, changes_snapshot = copy.deepcopy(base), copy.deepcopy(changes)
    merged = merge_policy(base, changes)
    merged["lockout"]["threshold"] = 1
    merged["cors_origins"].append("https://c.example.com")
    assert base == base_snapshot
    assert changes == changes_snapshot


def test_merged_with_defaults_of_nothing_is_the_defaults() -> None:
    assert merged_with_defaults(None) == DEFAULT_POLICY
    assert merged_with_defaults({}) == DEFAULT_POLICY


def test_merged_with_defaults_fills_keys_missing_from_a_stored_policy() -> None:
    merged = merged_with_defaults({"lockout": {"threshold": 2}})
    assert merged["lockout"] == {"threshold": 2, "window_minutes": 15, "duration_minutes": 15}
    assert merged["tokens"] == DEFAULT_POLICY["tokens"]


def test_merged_with_defaults_returns_a_copy_of_the_defaults() -> None:
    merged = merged_with_defaults(None)
    merged["lockout"]["threshold"] = 99
    merged["extra_claims"].append("phone")
    assert DEFAULT_POLICY == PRISTINE_DEFAULTS


def test_a_tenants_effective_policy_follows_a_change_of_its_stored_policy() -> None:
    tenant = Tenant(schema_name="policy_memo", policy={})
    assert tenant.effective_policy["lockout"]["threshold"] == 5
    assert tenant.effective_policy is tenant.effective_policy  # merged once while unchanged
    tenant.policy["lockout"] = {"threshold": 3}  # changed in place
    assert tenant.effective_policy["lockout"]["threshold"] == 3
    tenant.policy = {"lockout": {"threshold": 7}}  # replaced
    assert tenant.effective_policy["lockout"] == {"threshold": 7, "window_minutes": 15, "duration_minutes": 15}


def test_instances_of_one_tenant_share_its_merge_until_their_stored_policies_differ() -> None:
    # Every request reads its tenant anew from the cache: the merge is kept for the process.
    first = Tenant(pk=-71, schema_name="policy_shared", policy={"lockout": {"threshold": 4}})
    second = Tenant(pk=-71, schema_name="policy_shared", policy={"lockout": {"threshold": 4}})
    assert second.effective_policy is first.effective_policy
    changed = Tenant(pk=-71, schema_name="policy_shared", policy={"lockout": {"threshold": 6}})
    assert changed.effective_policy["lockout"]["threshold"] == 6
    assert first.effective_policy["lockout"]["threshold"] == 4
    other = Tenant(pk=-72, schema_name="policy_other", policy={})
    assert other.effective_policy["lockout"]["threshold"] == 5


# --- Bounds --------------------------------------------------------------------------------

BOUNDS = [
    ("password", "min_length", 8, 128),
    ("lockout", "threshold", 1, 100),
    ("lockout", "window_minutes", 1, 1440),
    ("lockout", "duration_minutes", 1, 1440),
    ("tokens", "access_minutes", 1, 1440),
    ("tokens", "refresh_days", 1, 365),
]


def _with_room_for(section: str, key: str, value: int) -> dict[str, Any]:
    changes: dict[str, Any] = {section: {key: value}}
    if (section, key) == ("tokens", "refresh_days"):
        # refresh_absolute_days must be at least refresh_days; give it room so only the bound is tested.
        changes[section]["refresh_absolute_days"] = max(value, 1)
    return changes


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [(section, key, low) for section, key, low, _ in BOUNDS]
    + [(section, key, high) for section, key, _, high in BOUNDS],
)
def test_a_bounded_setting_is_accepted_at_its_edge(section: str, key: str, value: int) -> None:
    assert policy_validate(_with_room_for(section, key, value))[section][key] == value


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [(section, key, low - 1) for section, key, low, _ in BOUNDS]
    + [(section, key, high + 1) for section, key, _, high in BOUNDS],
)
def test_a_bounded_setting_is_refused_one_past_its_edge(section: str, key: str, value: int) -> None:
    assert f"{section}.{key}" in refusal_paths(_with_room_for(section, key, value))


def test_lockout_threshold_of_zero_is_refused() -> None:
    assert "lockout.threshold" in refusal_paths({"lockout": {"threshold": 0}})


def test_a_non_integer_bounded_setting_is_refused() -> None:
    assert "lockout.threshold" in refusal_paths({"lockout": {"threshold": "many"}})
    assert "password.min_length" in refusal_paths({"password": {"min_length": 8.5}})


def test_max_sessions_per_user_equal_to_max_devices_per_user_is_accepted() -> None:
    result = policy_validate({"sessions": {"max_sessions_per_user": 3}}, max_devices_per_user=3)
    assert result["sessions"]["max_sessions_per_user"] == 3


def test_max_sessions_per_user_above_max_devices_per_user_is_refused() -> None:
    paths = refusal_paths({"sessions": {"max_sessions_per_user": 4}}, max_devices_per_user=3)
    assert "sessions.max_sessions_per_user" in paths


def test_max_sessions_per_user_of_one_is_accepted_under_a_device_limit() -> None:
    result = policy_validate({"sessions": {"max_sessions_per_user": 1}}, max_devices_per_user=3)
    assert result["sessions"]["max_sessions_per_user"] == 1


@pytest.mark.parametrize("max_devices_per_user", [None, 3])
def test_max_sessions_per_user_of_zero_is_refused(max_devices_per_user: int | None) -> None:
    paths = refusal_paths({"sessions": {"max_sessions_per_user": 0}}, max_devices_per_user=max_devices_per_user)
    assert "sessions.max_sessions_per_user" in paths


@pytest.mark.parametrize("value", [1, 4, 50, 10_000])
def test_without_max_devices_per_user_any_max_sessions_of_at_least_one_is_accepted(value: int) -> None:
    assert policy_validate({"sessions": {"max_sessions_per_user": value}})["sessions"]["max_sessions_per_user"] == value


def test_a_current_max_sessions_above_a_lowered_device_limit_is_refused() -> None:
    current = policy_validate({"sessions": {"max_sessions_per_user": 5}})
    paths = refusal_paths({"lockout": {"threshold": 3}}, current=current, max_devices_per_user=3)
    assert "sessions.max_sessions_per_user" in paths


# --- Tokens --------------------------------------------------------------------------------


def test_refresh_absolute_days_smaller_than_refresh_days_is_refused() -> None:
    paths = refusal_paths({"tokens": {"refresh_days": 10, "refresh_absolute_days": 9}})
    assert "tokens.refresh_absolute_days" in paths


def test_refresh_days_above_the_current_refresh_absolute_days_is_refused() -> None:
    # Default refresh_absolute_days is 30.
    assert "tokens.refresh_absolute_days" in refusal_paths({"tokens": {"refresh_days": 31}})


def test_refresh_absolute_days_equal_to_refresh_days_is_accepted() -> None:
    result = policy_validate({"tokens": {"refresh_days": 10, "refresh_absolute_days": 10}})
    assert result["tokens"]["refresh_days"] == result["tokens"]["refresh_absolute_days"] == 10


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_an_asymmetric_signing_algorithm_is_accepted(algorithm: str) -> None:
    assert policy_validate({"tokens": {"algorithm": algorithm}})["tokens"]["algorithm"] == algorithm


@pytest.mark.parametrize("algorithm", ["HS256", "none", "rs256", ""])
def test_a_symmetric_or_missing_signing_algorithm_is_refused(algorithm: str) -> None:
    assert "tokens.algorithm" in refusal_paths({"tokens": {"algorithm": algorithm}})


# --- Sessions ------------------------------------------------------------------------------


@pytest.mark.parametrize("on_limit", ["terminate_oldest", "deny_new"])
def test_a_known_on_limit_choice_is_accepted(on_limit: str) -> None:
    assert policy_validate({"sessions": {"on_limit": on_limit}})["sessions"]["on_limit"] == on_limit


@pytest.mark.parametrize("on_limit", ["terminate_newest", "deny", "", "DENY_NEW"])
def test_an_unknown_on_limit_choice_is_refused(on_limit: str) -> None:
    assert "sessions.on_limit" in refusal_paths({"sessions": {"on_limit": on_limit}})


# --- Rate limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", ["5/min", "1/sec", "100/hour", "10/day"])
def test_a_well_formed_rate_is_accepted(rate: str) -> None:
    assert policy_validate({"rate_limits": {"login": rate}})["rate_limits"]["login"] == rate


@pytest.mark.parametrize("rate", ["0/min", "5/week", "five/min", "5 / min", "-1/min", ""])
def test_a_malformed_rate_is_refused(rate: str) -> None:
    assert "rate_limits.login" in refusal_paths({"rate_limits": {"login": rate}})


@pytest.mark.parametrize("key", ["login", "registration", "password_reset", "password_reset_confirm", "refresh"])
def test_every_rate_limit_is_checked(key: str) -> None:
    assert f"rate_limits.{key}" in refusal_paths({"rate_limits": {key: "5/week"}})


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("5/min", (5, 60)), ("2/hour", (2, 3600)), ("1/sec", (1, 1)), ("10/day", (10, 86400))],
)
def test_parse_rate_returns_requests_and_seconds(rate: str, parsed: tuple[int, int]) -> None:
    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["0/min", "5/week", "five/min", "5 / min", "-1/min", "", "5/minute"])
def test_parse_rate_raises_value_error_on_a_bad_rate(rate: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(rate)


@pytest.mark.parametrize("rate", DEFAULT_POLICY["rate_limits"].values())
def test_every_default_rate_parses(rate: str) -> None:
    requests, seconds = parse_rate(rate)
    assert requests >= 1
    assert seconds >= 1


# --- Unknown and ill-shaped input ----------------------------------------------------------


def test_an_unknown_section_is_refused() -> None:
    assert "lockuot" in refusal_paths({"lockuot": {"threshold": 3}})


def test_an_unknown_key_inside_a_section_is_refused() -> None:
    assert "lockout.treshold" in refusal_paths({"lockout": {"treshold": 3}})


def test_an_unknown_key_is_refused_even_beside_known_keys() -> None:
    paths = refusal_paths({"password": {"min_length": 10, "require_uper": False}})
    assert "password.require_uper" in paths


@pytest.mark.parametrize("section", ["password", "lockout", "tokens", "sessions", "rate_limits", "registration"])
def test_an_unknown_key_is_refused_in_every_object_section(section: str) -> None:
    assert f"{section}.no_such_setting" in refusal_paths({section: {"no_such_setting": 1}})


@pytest.mark.parametrize("value", [5, "strict", ["threshold"], True])
def test_a_non_object_section_is_refused(value: Any) -> None:
    assert "lockout.non_field_errors" in refusal_paths({"lockout": value})


def test_a_null_section_is_refused() -> None:
    assert "lockout" in refusal_paths({"lockout": None})


@pytest.mark.parametrize("changes", [[], [{"lockout": {"threshold": 3}}], "lockout", 5, True])
def test_a_non_object_policy_is_refused(changes: Any) -> None:
    assert refusal_paths(changes)


def test_a_list_section_given_as_a_string_is_refused() -> None:
    assert "extra_claims" in refusal_paths({"extra_claims": "phone"})
    assert "cors_origins" in refusal_paths({"cors_origins": "https://pos.example.com"})


# --- Extra claims --------------------------------------------------------------------------


@pytest.mark.parametrize("claim", CLAIMABLE_PROFILE_FIELDS)
def test_a_claimable_profile_field_is_accepted_as_an_extra_claim(claim: str) -> None:
    assert policy_validate({"extra_claims": [claim]})["extra_claims"] == [claim]


def test_all_claimable_profile_fields_together_are_accepted() -> None:
    claims = list(CLAIMABLE_PROFILE_FIELDS)
    assert policy_validate({"extra_claims": claims})["extra_claims"] == claims


def test_no_extra_claims_at_all_is_accepted() -> None:
    assert policy_validate({"extra_claims": []})["extra_claims"] == []


@pytest.mark.parametrize("claim", ["password", "permissions", "is_superuser", "email_verified_at", ""])
def test_a_field_outside_the_claimable_profile_fields_is_refused_as_an_extra_claim(claim: str) -> None:
    assert "extra_claims.0" in refusal_paths({"extra_claims": [claim]})


def test_the_failing_extra_claim_is_named_by_its_position() -> None:
    paths = refusal_paths({"extra_claims": ["employee_id", "phone", "password"]})
    assert "extra_claims.2" in paths
    assert "extra_claims.0" not in paths
    assert "extra_claims.1" not in paths


# --- CORS origins --------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["https://pos.example.com", "http://localhost:3000", "https://pos.example.com:8443"])
def test_a_bare_origin_is_accepted(origin: str) -> None:
    assert policy_validate({"cors_origins": [origin]})["cors_origins"] == [origin]


@pytest.mark.parametrize(
    "origin",
    [
        "https://pos.example.com/path",
        "https://pos.example.com/",
        "ftp://x.com",
        "*",
        "pos.example.com",
        "https://*.example.com",
        "https://user@pos.example.com",
        "",
    ],
)
def test_anything_but_a_bare_http_or_https_origin_is_refused(origin: str) -> None:
    assert "cors_origins.0" in refusal_paths({"cors_origins": [origin]})


def test_the_failing_cors_origin_is_named_by_its_position() -> None:
    paths = refusal_paths({"cors_origins": ["https://pos.example.com", "*"]})
    assert "cors_origins.1" in paths
    assert "cors_origins.0" not in paths


# --- Errors --------------------------------------------------------------------------------


def test_refusals_raise_a_drf_validation_error() -> None:
    with pytest.raises(serializers.ValidationError):
        policy_validate({"lockout": {"threshold": 0}})


def test_every_failing_field_is_reported_at_once() -> None:
    paths = refusal_paths(
        {
            "password": {"min_length": 7},
            "lockout": {"threshold": 101},
            "tokens": {"algorithm": "HS256"},
            "cors_origins": ["*"],
        }
    )
    assert {"password.min_length", "lockout.threshold", "tokens.algorithm", "cors_origins.0"} <= set(paths)


def test_a_valid_field_is_not_reported_beside_a_failing_one() -> None:
    paths = refusal_paths({"lockout": {"threshold": 0, "window_minutes": 30}})
    assert set(paths) == {"lockout.threshold"}


def test_a_non_object_policy_is_reported_as_a_non_field_error() -> None:
    assert set(refusal_paths(["lockout"])) == {"non_field_errors"}
