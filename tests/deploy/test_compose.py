"""deploy/compose.yaml: valid by the Compose Specification's JSON schema (vendored in
check-jsonschema), and right in what the schema cannot see."""

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.files import APP_USER_ID, DEPLOY, production_env_names, view_name_at, yaml_documents

COMPOSE = DEPLOY / "compose.yaml"
APP_SERVICES = ("migrate", "web", "worker", "beat")
CHECK_JSONSCHEMA = str(Path(sys.executable).with_name("check-jsonschema"))


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 (our own tool, fixed arguments)
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml_documents(COMPOSE)[0]["services"]


def test_the_compose_file_validates_against_the_compose_spec_schema():
    result = validate(COMPOSE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_refuses_a_compose_file_with_an_unknown_dependency_condition(tmp_path):
    broken = tmp_path / "compose.yaml"
    shutil.copy(COMPOSE, broken)
    broken.write_text(broken.read_text().replace("service_completed_successfully", "service_done", 1))

    assert validate(broken).returncode != 0


def test_it_runs_web_worker_beat_postgresql_redis_and_a_one_shot_migrate_job(services):
    assert set(services) == {"web", "worker", "beat", "postgres", "redis", "migrate"}
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"][:3] == ["python", "manage.py", "migrate_schemas"]
    assert services["web"]["command"] == ["gunicorn", "-c", "deploy/gunicorn.conf.py", "config.wsgi"]


def test_the_app_waits_for_the_migrations_and_the_migrations_for_healthy_services(services):
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }


def test_the_services_others_wait_on_have_health_checks(services):
    for name in ("postgres", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name


def test_the_containers_without_a_web_server_replace_the_images_http_health_check(services):
    assert "celery -A config inspect ping" in services["worker"]["healthcheck"]["test"][1]
    assert services["beat"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_the_web_health_check_asks_a_real_probe_path(services):
    command = " ".join(services["web"]["healthcheck"]["test"])

    assert "http://127.0.0.1:8000/health/ready/" in command
    assert view_name_at("/health/ready/") == "health-ready"


def test_every_variable_the_settings_read_is_set_for_the_web_process(services):
    environment = services["web"]["environment"]

    assert production_env_names() - set(environment) == set()
    assert environment["DJANGO_SETTINGS_MODULE"] == "config.settings.prod"


def test_the_worker_and_beat_get_the_same_settings_as_the_web_process(services):
    web = services["web"]["environment"]
    for name in ("worker", "beat", "migrate"):
        environment = services[name]["environment"]
        assert {key for key in web if not key.startswith("GUNICORN_")} <= set(environment), name


def test_the_migrations_run_without_a_statement_timeout(services):
    assert services["migrate"]["environment"]["DB_STATEMENT_TIMEOUT_MS"] == "0"
    assert services["web"]["environment"]["DB_STATEMENT_TIMEOUT_MS"] == "5000"


def test_the_app_containers_run_as_the_unprivileged_user_on_a_read_only_filesystem(services):
    for name in APP_SERVICES:
        service = services[name]
        assert service["user"] == f"{APP_USER_ID}:{APP_USER_ID}", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name


def test_secrets_come_from_the_environment_and_are_required(services):
    environment = services["web"]["environment"]

    assert environment["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert environment["IDP_KEY_ENCRYPTION_KEYS"].startswith("${IDP_KEY_ENCRYPTION_KEYS:?")
    assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
