"""deploy/Dockerfile, read as text (no Docker here): two stages, the toolchain only in the
first, the final stage non-root with a health check on a real probe path."""

import re
import shlex

import pytest

from tests.deploy.files import APP_USER_ID, DEPLOY, K8S, ROOT, view_name_at, yaml_documents

DOCKERFILE = DEPLOY / "Dockerfile"
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make ", "libpq-dev", "python3-dev")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


@pytest.fixture(scope="module")
def final() -> list[tuple[str, str]]:
    return stages()[-1]


def test_the_image_is_built_in_two_stages_and_the_last_is_the_runtime():
    all_stages = stages()

    assert len(all_stages) == 2
    assert all_stages[0][0][1].endswith("AS build")
    assert all_stages[-1][0][1].endswith("AS runtime")


def test_the_final_stage_installs_nothing_and_so_no_compiler(final):
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")

    assert "apt-get" not in runs and "pip install" not in runs
    assert not [tool for tool in COMPILERS if tool in runs]


def test_the_toolchain_is_installed_in_the_build_stage_only():
    build_runs = " ".join(rest for keyword, rest in stages()[0] if keyword == "RUN")

    assert "build-essential" in build_runs
    assert "collectstatic" in build_runs


def test_the_final_stage_copies_only_from_the_build_stage(final):
    copies = [rest for keyword, rest in final if keyword == "COPY"]

    assert copies and all(copy.startswith("--from=build ") for copy in copies)


def test_the_final_stage_runs_as_the_unprivileged_user_that_the_manifests_expect(final):
    users = [rest for keyword, rest in final if keyword == "USER"]
    web = next(doc for doc in yaml_documents(K8S / "web.yaml") if doc["kind"] == "Deployment")

    assert users == [f"{APP_USER_ID}:{APP_USER_ID}"]
    assert web["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == APP_USER_ID
    assert any(keyword == "RUN" and f"--uid {APP_USER_ID}" in rest for keyword, rest in final)


def test_the_health_check_asks_the_liveness_probe(final):
    checks = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]

    assert len(checks) == 1
    assert "http://127.0.0.1:8000/health/live/" in checks[0]
    assert view_name_at("/health/live/") == "health-live"


def test_the_default_command_serves_with_the_gunicorn_config_in_the_repository(final):
    command = next(rest for keyword, rest in final if keyword == "CMD")

    assert shlex.split(command.replace("[", "").replace("]", "").replace(",", " ")) == [
        "gunicorn",
        "-c",
        "deploy/gunicorn.conf.py",
        "config.wsgi",
    ]
    assert (ROOT / "deploy" / "gunicorn.conf.py").is_file()


def test_the_build_context_leaves_out_local_state():
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()

    assert {".git", ".venv", ".data", ".env", "staticfiles", "media"} <= set(ignored)
