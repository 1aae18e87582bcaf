"""Reading the deploy files for the tests: YAML documents, and the environment variables the
code reads (so that the deploy files can be checked to set every one)."""

import ast
from pathlib import Path
from typing import Any

import yaml
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS_FILES = (ROOT / "config" / "settings" / "base.py", ROOT / "config" / "settings" / "prod.py")
GUNICORN_CONFIG = DEPLOY / "gunicorn.conf.py"
ENV_READERS = {"env_str", "env_int", "env_bool", "env_list"}
APP_USER_ID = 10001


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):  # os.environ.get
        owner = node.func.value
        if isinstance(owner, ast.Attribute) and owner.attr == "environ" and node.func.attr == "get":
            return "environ.get"
    return None


def env_names_read_by(path: Path) -> set[str]:
    """The names passed as the first argument to an environment reader in `path`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _called_name(node) in ENV_READERS | {"environ.get"}
        ):
            names.add(node.args[0].value)
    return names


def production_env_names() -> set[str]:
    """Every variable the production settings and the gunicorn config read, and the one that
    picks the settings module."""
    names = {"DJANGO_SETTINGS_MODULE"}
    for path in (*SETTINGS_FILES, GUNICORN_CONFIG):
        names |= env_names_read_by(path)
    return names


def gunicorn_env_names() -> set[str]:
    return env_names_read_by(GUNICORN_CONFIG)


def view_name_at(path: str) -> str:
    """The URL name served at `path` on any host (health probes are routed in the public URLconf)."""
    try:
        return resolve(path, urlconf="config.urls_public").url_name or ""
    except Resolver404:
        return ""
