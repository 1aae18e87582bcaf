"""deploy/k8s/: every manifest valid by the Kubernetes JSON schemas bundled in
kubernetes-validate (strict: unknown fields refused), and right in what the schemas cannot see."""

import copy
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.files import APP_USER_ID, K8S, gunicorn_env_names, production_env_names, view_name_at, yaml_documents

KUBERNETES_VERSION = kubernetes_validate.latest_version()
MANIFESTS = sorted(K8S.glob("*.yaml"))


def all_resources() -> list[dict[str, Any]]:
    return [document for path in MANIFESTS for document in yaml_documents(path)]


def resource(kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in all_resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for item in all_resources():
        if item["kind"] in ("Deployment", "Job"):
            yield f"{item['kind']}/{item['metadata']['name']}", item["spec"]["template"]["spec"]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for where, spec in pod_specs():
        for container in spec["containers"]:
            yield f"{where}/{container['name']}", container


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_each_manifest_validates_strictly_against_the_kubernetes_schemas(path):
    for document in yaml_documents(path):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_deployment_with_a_misspelt_field():
    broken = copy.deepcopy(resource("Deployment", "idp-web"))
    broken["spec"]["replica"] = 2

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_there_are_web_worker_and_beat_deployments_a_migrate_job_config_and_secret():
    kinds = {(item["kind"], item["metadata"]["name"]) for item in all_resources()}

    assert {
        ("Deployment", "idp-web"),
        ("Deployment", "idp-worker"),
        ("Deployment", "idp-beat"),
        ("Job", "idp-migrate"),
        ("ConfigMap", "idp-config"),
        ("Secret", "idp-secrets"),
        ("Service", "idp-web"),
        ("HorizontalPodAutoscaler", "idp-web"),
        ("PodDisruptionBudget", "idp-web"),
    } <= kinds


def test_the_web_probes_point_at_the_real_health_views_on_the_served_port():
    container = resource("Deployment", "idp-web")["spec"]["template"]["spec"]["containers"][0]
    port_names = {port["name"] for port in container["ports"]}

    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live/"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready/"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live/"
    assert view_name_at("/health/live/") == "health-live"
    assert view_name_at("/health/ready/") == "health-ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in port_names


def test_the_service_and_the_disruption_budget_select_the_web_pods():
    pod_labels = resource("Deployment", "idp-web")["spec"]["template"]["metadata"]["labels"]
    service = resource("Service", "idp-web")["spec"]
    budget = resource("PodDisruptionBudget", "idp-web")["spec"]

    assert service["selector"].items() <= pod_labels.items()
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["ports"][0]["targetPort"] == "http"


def test_each_autoscaler_targets_an_existing_deployment_and_keeps_two_replicas_at_least():
    for item in all_resources():
        if item["kind"] == "HorizontalPodAutoscaler":
            target = item["spec"]["scaleTargetRef"]
            assert resource(target["kind"], target["name"])
            assert item["spec"]["minReplicas"] >= 2


def test_beat_is_a_single_replica_that_is_never_doubled_during_an_update():
    beat = resource("Deployment", "idp-beat")["spec"]

    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}
    assert not [
        item
        for item in all_resources()
        if item["kind"] == "HorizontalPodAutoscaler" and item["spec"]["scaleTargetRef"]["name"] == "idp-beat"
    ]


def test_every_variable_the_settings_read_comes_from_the_config_map_or_the_secret():
    config = set(resource("ConfigMap", "idp-config")["data"])
    secret = set(resource("Secret", "idp-secrets")["stringData"])

    assert production_env_names() - (config | secret) == set()
    assert config & secret == set()
    # ... and nothing in them that no code reads (a misspelt name would be silently ignored).
    assert (config | secret) - production_env_names() == set()


def test_the_secret_holds_placeholders_only():
    secret = resource("Secret", "idp-secrets")

    assert "data" not in secret
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())


def test_only_the_web_pods_get_the_gunicorn_settings_they_read():
    web = resource("Deployment", "idp-web")["spec"]["template"]["spec"]["containers"][0]
    config = resource("ConfigMap", "idp-config")["data"]

    assert {"configMapRef": {"name": "idp-config"}} in web["envFrom"]
    assert gunicorn_env_names() <= set(config)


def test_every_pod_runs_as_the_unprivileged_user_and_every_container_on_a_read_only_root():
    for where, spec in pod_specs():
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert context["runAsUser"] == APP_USER_ID, where
        assert spec["automountServiceAccountToken"] is False, where
    for where, container in containers():
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["capabilities"] == {"drop": ["ALL"]}, where
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], where  # noqa: S108 (an emptyDir)


def test_every_container_declares_requests_and_limits_and_runs_the_same_image():
    images = set()
    for where, container in containers():
        assert set(container["resources"]) == {"requests", "limits"}, where
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where
        assert "memory" in container["resources"]["limits"], where
        images.add(container["image"])
    assert len(images) == 1


def test_the_migrate_job_runs_the_migrations_once_without_a_statement_timeout():
    job = resource("Job", "idp-migrate")["spec"]
    container = job["template"]["spec"]["containers"][0]

    assert container["command"] == ["python", "manage.py", "migrate_schemas", "--noinput"]
    assert {"name": "DB_STATEMENT_TIMEOUT_MS", "value": "0"} in container["env"]
    assert job["template"]["spec"]["restartPolicy"] == "Never"
