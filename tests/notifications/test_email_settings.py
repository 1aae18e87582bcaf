"""SMTP settings from the environment (config/settings): SMTP everywhere but `make run`
without EMAIL_HOST, which prints emails instead; TLS and SSL are exclusive."""

import json
import os
import subprocess
import sys

import pytest

from tests.notifications.harness import ROOT

EMAIL_VARIABLES = (
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "EMAIL_TIMEOUT",
    "DEFAULT_FROM_EMAIL",
)
SMTP = "django.core.mail.backends.smtp.EmailBackend"
CONSOLE = "django.core.mail.backends.console.EmailBackend"
READ = (
    "import importlib, json, sys; settings = importlib.import_module(sys.argv[1]); "
    "print(json.dumps({name: getattr(settings, name) for name in sys.argv[2:]}))"
)


def email_settings(module: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Import settings `module` in a fresh interpreter with only these EMAIL_* variables set."""
    env = {key: value for key, value in os.environ.items() if key not in EMAIL_VARIABLES}
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/unused")  # dev: no embedded server
    env.update(environment)
    return subprocess.run(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-c", READ, module, "EMAIL_BACKEND", *EMAIL_VARIABLES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def loaded(module: str, **environment: str) -> dict[str, object]:
    result = email_settings(module, **environment)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_every_smtp_setting_comes_from_the_environment():
    values = loaded(
        "config.settings.base",
        EMAIL_HOST="smtp.example.com",
        EMAIL_PORT="587",
        EMAIL_HOST_USER="mailer",
        EMAIL_HOST_PASSWORD="s3cret",
        EMAIL_USE_TLS="true",
        EMAIL_TIMEOUT="7",
        DEFAULT_FROM_EMAIL="IdP <no-reply@example.com>",
    )

    assert values == {
        "EMAIL_BACKEND": SMTP,
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "mailer",
        "EMAIL_HOST_PASSWORD": "s3cret",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 7,
        "DEFAULT_FROM_EMAIL": "IdP <no-reply@example.com>",
    }


def test_without_an_smtp_host_make_run_prints_emails_to_the_console():
    assert loaded("config.settings.dev")["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert (
        loaded("config.settings.dev", EMAIL_HOST="")["EMAIL_BACKEND"]
        == "django.core.mail.backends.console.EmailBackend"
    )


def test_with_an_smtp_host_make_run_sends_over_smtp():
    values = loaded("config.settings.dev", EMAIL_HOST="127.0.0.1", EMAIL_PORT="1025")

    assert (values["EMAIL_BACKEND"], values["EMAIL_HOST"], values["EMAIL_PORT"]) == (
        SMTP,
        "127.0.0.1",
        1025,
    )


def test_outside_make_run_emails_never_go_to_the_console_even_without_an_smtp_host():
    values = loaded("config.settings.base")

    assert (values["EMAIL_BACKEND"], values["EMAIL_HOST"]) == (
        "django.core.mail.backends.smtp.EmailBackend",
        "localhost",
    )


@pytest.mark.parametrize("module", ["config.settings.base", "config.settings.dev"])
def test_tls_and_ssl_together_refuse_to_start(module):
    result = email_settings(module, EMAIL_USE_TLS="1", EMAIL_USE_SSL="1")

    assert result.returncode != 0
    assert "Set EMAIL_USE_TLS (STARTTLS, usually port 587) or EMAIL_USE_SSL (465), not both." in result.stderr


def test_a_port_that_is_not_a_number_refuses_to_start():
    result = email_settings("config.settings.base", EMAIL_PORT="smtp")

    assert result.returncode != 0
    assert "EMAIL_PORT must be an integer" in result.stderr
