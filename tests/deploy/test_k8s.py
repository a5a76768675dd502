"""The kustomize base: parses, lists only existing files, probes on the right paths and ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.deploy.support import DEPLOY
from zhibao_cli.main import app

BASE = DEPLOY / "k8s" / "base"
PORTS = {"intake": 8101, "aggregator": 8102, "alerts": 8103, "response": 8104}


def documents(kustomization: Path) -> list[dict[str, Any]]:
    """Every resource document a kustomization lists (files must exist and parse)."""
    spec = yaml.safe_load(kustomization.read_text())
    found: list[dict[str, Any]] = []
    for resource in spec["resources"]:
        path = kustomization.parent / resource
        if path.is_dir():
            found += documents(path / "kustomization.yaml")
            continue
        assert path.is_file(), f"{kustomization} lists missing {resource}"
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    """The base's resources of one kind, by name."""
    return {
        d["metadata"]["name"]: d
        for d in documents(BASE / "kustomization.yaml")
        if d["kind"] == kind
    }


def cli_command(args: list[str]) -> None:
    """``zhibao <args> --help`` works, i.e. the command exists (an unknown one exits 2)."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"zhibao {' '.join(args)}: {result.output}"


def test_every_listed_file_parses_and_every_file_is_listed() -> None:
    """No manifest is forgotten in kustomization.yaml, none listed is missing."""
    spec = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(spec["resources"]) == on_disk
    assert all(
        doc.get("apiVersion") and doc.get("kind") for doc in documents(BASE / "kustomization.yaml")
    )


@pytest.mark.parametrize("service", sorted(PORTS))
def test_deployment_probes_and_resources(service: str) -> None:
    """Liveness on /healthz and readiness on /readyz, on the service's own port."""
    deployment = by_kind("Deployment")[service]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        assert port == PORTS[service]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["image"] == f"zhibao/{service}"
    assert container["args"] == ["zhibao", service]
    cli_command([service])
    env = {e["name"] for e in container["env"]}
    assert "ZHIBAO_NATS_URL" in env
    assert {"configMapRef": {"name": "zhibao-config"}} in container["envFrom"]
    service_ports = by_kind("Service")[service]["spec"]["ports"]
    assert service_ports == [{"name": "http", "port": PORTS[service], "targetPort": "http"}]
    security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True


def test_the_migration_job_runs_existing_commands() -> None:
    """The Job runs every service's migrate command, which exists in the CLI."""
    job = by_kind("Job")["zhibao-migrate"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    script = container["command"][-1]
    for part in script.split("&&"):
        words = part.split()
        assert words[0] == "zhibao"
        cli_command(words[1:])
    for service in ("aggregator", "alerts", "response"):
        assert f"zhibao {service} migrate" in script
    env = {e["name"] for e in container["env"]}
    assert {
        "ZHIBAO_AGGREGATOR_DATABASE_URL",
        "ZHIBAO_ALERTS_DATABASE_URL",
        "ZHIBAO_RESPONSE_DATABASE_URL",
    } <= env


def test_secrets_are_referenced_not_shipped() -> None:
    """No Secret object in the base: secrets are references (secretKeyRef)."""
    docs = documents(BASE / "kustomization.yaml")
    assert not [d for d in docs if d["kind"] == "Secret"]
    text = "".join(p.read_text() for p in BASE.glob("*.yaml"))
    assert "secretKeyRef" in text and "password" not in text.lower().replace("password:", "")
    assert by_kind("ConfigMap")["zhibao-config"]["data"]["ZHIBAO_STREAM_REPLICAS"] == "3"


def test_the_example_overlay_builds_on_the_base() -> None:
    """The overlay lists the base and files that exist (secrets.env is the operator's)."""
    overlay = DEPLOY / "k8s" / "overlays" / "example"
    spec = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert "../../base" in spec["resources"]
    for resource in spec["resources"]:
        assert (overlay / resource).exists()
    assert {g["name"] for g in spec["secretGenerator"]} == {"zhibao-secrets", "zhibao-nats-ca"}
    example_keys = {
        line.split("=", 1)[0]
        for line in (overlay / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    referenced = {
        ref["secretKeyRef"]["key"]
        for doc in documents(BASE / "kustomization.yaml")
        if doc["kind"] in ("Deployment", "Job")
        for c in doc["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
        if (ref := e.get("valueFrom"))
    }
    assert referenced == example_keys


def test_the_response_deployment_gets_its_secrets_and_known_settings() -> None:
    """Its NATS user, database, sealing key and intake's pseudonym key from the Secret;
    every ZHIBAO_ variable it sets is a setting of the response service."""
    from zhibao_response.settings import ResponseSettings

    [container] = by_kind("Deployment")["response"]["spec"]["template"]["spec"]["containers"]
    secrets = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "valueFrom" in e
    }
    assert secrets["ZHIBAO_NATS_URL"] == "nats-url-response"
    assert secrets["ZHIBAO_RESPONSE_DATABASE_URL"] == "response-database-url"
    assert secrets["ZHIBAO_RESPONSE_KEY"] == "response-key"
    assert secrets["ZHIBAO_PSEUDONYM_KEY"] == "pseudonym-key"  # intake's: one pseudonym
    known = {f"ZHIBAO_{name.upper()}" for name in ResponseSettings.model_fields}
    assert {e["name"] for e in container["env"]} <= known
