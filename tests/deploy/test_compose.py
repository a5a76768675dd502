"""deploy/compose.yaml: valid for the Compose specification and wired as the issue asks.

No Docker engine runs here, so the file is interpolated as Compose does (``${VAR}``,
``${VAR:-default}``, ``${VAR:?message}``) and then validated: against the official
compose-spec JSON schema shipped inside the check-jsonschema package when that is
installed, and always by the structural checks below.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.support import DEPLOY, defined_metrics, used_metrics

COMPOSE = DEPLOY / "compose.yaml"
SERVICES = ("intake", "aggregator", "alerts", "response")
#: The services with a database of their own (PostgreSQL, migrated by the one-shot job).
WITH_DATABASE = ("aggregator", "alerts", "response")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$\$")


class MissingVariable(KeyError):
    """A ``${VAR:?message}`` whose variable is unset."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation (the subset compose.yaml uses)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = env.get(name)
        if operator in (":-", "-"):
            unset = value is None or (operator == ":-" and value == "")
            return argument if unset else str(value)
        if operator in (":?", "?"):
            if value is None or (operator == ":?" and value == ""):
                raise MissingVariable(f"{name}: {argument}")
            return value
        return value or ""

    return _VARIABLE.sub(replace, text)


def secrets_env() -> dict[str, str]:
    """A value for every variable deploy/env.example lists (what an operator fills in)."""
    env: dict[str, str] = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value or f"test-{key.lower()}-0123456789abcdef0123456789"
    return env


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    """Interpolate every string of a parsed file (Compose interpolates after parsing YAML)."""
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def rendered(env: dict[str, str] | None = None) -> dict[str, Any]:
    """compose.yaml after interpolation (default: env.example's variables filled in)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    return dict(interpolate_tree(raw, secrets_env() if env is None else env))


def test_compose_refuses_to_render_without_secrets() -> None:
    """Every secret is required: with an empty environment, interpolation stops on one."""
    with pytest.raises(MissingVariable, match=r"set it in deploy/\.env"):
        rendered({})


def test_no_secret_is_written_in_compose() -> None:
    """Passwords, keys and credentialed URLs come from variables, never literals."""
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            text = str(value)
            if re.search(r"PASSWORD|_KEY$|SECRET", key) or "@" in text:
                assert "${" in text, f"{name}.{key} holds a literal secret"


def compose_spec_validator() -> Any:
    """A validator for the official compose-spec JSON schema, as vendored by check-jsonschema."""
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_compose_matches_the_compose_spec_schema() -> None:
    """The official compose-spec JSON schema accepts the rendered file."""
    validator = compose_spec_validator()
    errors = sorted(validator.iter_errors(rendered()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_check_catches_a_broken_file() -> None:
    """The same validation refuses a service with an unknown key (it can fail)."""
    validator = compose_spec_validator()
    broken = rendered()
    broken["services"]["intake"]["healthchek"] = {}
    assert list(validator.iter_errors(broken))


def test_four_service_images_from_the_one_dockerfile() -> None:
    """Each service is built from deploy/docker/Dockerfile with its own SERVICE and image."""
    services = rendered()["services"]
    images = set()
    for name in SERVICES:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "docker" / "Dockerfile"
        )
        assert build["args"]["SERVICE"] == name
        images.add(services[name]["image"].split(":")[0])
    assert len(images) == len(SERVICES)


def test_services_run_after_a_successful_migration() -> None:
    """The one-shot job migrates every service's database; the services wait for it."""
    services = rendered()["services"]
    migrate = services["migrate"]
    command = " ".join(migrate["command"])
    for name in WITH_DATABASE:
        assert f"zhibao {name} migrate" in command
        assert migrate["environment"][f"ZHIBAO_{name.upper()}_DATABASE_URL"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in WITH_DATABASE:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
        url = services[name]["environment"][f"ZHIBAO_{name.upper()}_DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://") and url.endswith(f"/{name}")


def test_a_three_node_nats_cluster_with_replicated_streams() -> None:
    """Three nodes, each with its own shipped config, accounts and TLS; streams R3;
    each service connects over TLS as its own user."""
    compose = rendered()
    services = compose["services"]
    for n in (1, 2, 3):
        node = services[f"nats-{n}"]
        assert re.fullmatch(r"nats:2\.(1\d|[2-9]\d)(\.\d+)?(-alpine)?", node["image"])
        mounts = {m.split(":")[1]: m.split(":")[0] for m in node["volumes"]}
        assert mounts["/etc/nats/nats.conf"] == f"./nats/nats-{n}.conf"
        assert (DEPLOY / mounts["/etc/nats/accounts.conf"]).is_file()
        assert mounts["/etc/nats/tls"] == "./nats/tls"
        assert "nats" in node["networks"]["bus"]["aliases"]
    for name in SERVICES:
        env = services[name]["environment"]
        assert env["ZHIBAO_STREAM_REPLICAS"] == "3"
        assert env["ZHIBAO_NATS_URL"].startswith(f"tls://{name}:")
        assert env["ZHIBAO_NATS_URL"].endswith("@nats:4222")
        assert env["SSL_CERT_FILE"] == "/etc/zhibao/tls/ca.pem"
    assert services["intake"]["environment"]["ZHIBAO_PSEUDONYM_KEY"]


def test_bind_mounts_exist_or_are_generated() -> None:
    """Every file a container mounts is in deploy/, or is made by make-certs.sh (git-ignored)."""
    for name, service in rendered()["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith("./"):
                continue
            path = DEPLOY / source
            if source.startswith("./nats/tls/") and source.endswith(".pem"):
                assert "*.pem" in (DEPLOY / "nats" / "tls" / ".gitignore").read_text()
                continue
            assert path.exists(), f"{name} mounts missing {source}"


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    """The datasource points at Prometheus; the dashboard uses it and real metric names."""
    grafana = DEPLOY / "grafana"
    datasources = yaml.safe_load(
        (grafana / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    [source] = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard_text = (grafana / "dashboards" / "zhibao-overview.json").read_text()
    dashboard = json.loads(dashboard_text)
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        assert panel["targets"]
    used = used_metrics(dashboard_text)
    assert used <= defined_metrics(), sorted(used - defined_metrics())
    provider = yaml.safe_load((grafana / "provisioning" / "dashboards" / "zhibao.yml").read_text())[
        "providers"
    ][0]
    mounts = {
        m.split(":")[1]: m.split(":")[0] for m in rendered()["services"]["grafana"]["volumes"]
    }
    assert mounts[provider["options"]["path"]] == "./grafana/dashboards"


def test_the_response_service_has_its_database_keys_and_settings() -> None:
    """Its own PostgreSQL role and database (made on the volume's first start), the key
    sealing personal details, intake's pseudonym key (the same variable), its NATS user,
    and only settings the service knows."""
    from zhibao_response.settings import ResponseSettings

    compose = rendered()
    response = compose["services"]["response"]
    env = response["environment"]
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "${ZHIBAO_RESPONSE_KEY:?" in raw["response"]["environment"]["ZHIBAO_RESPONSE_KEY"]
    assert raw["response"]["environment"]["ZHIBAO_PSEUDONYM_KEY"].startswith(
        "${ZHIBAO_PSEUDONYM_KEY:?"
    )
    assert (
        env["ZHIBAO_PSEUDONYM_KEY"]
        == compose["services"]["intake"]["environment"]["ZHIBAO_PSEUDONYM_KEY"]
    )
    known = {f"ZHIBAO_{name.upper()}" for name in ResponseSettings.model_fields}
    assert {k for k in env if k.startswith("ZHIBAO_")} <= known
    assert response["ports"] == ["127.0.0.1:8104:8104"]
    assert {"bus", "db", "front"} <= set(response["networks"])
    postgres = compose["services"]["postgres"]
    assert postgres["environment"]["RESPONSE_DB_PASSWORD"]
    assert "-d response" in " ".join(postgres["healthcheck"]["test"])
    init = (DEPLOY / "postgres" / "init" / "10-zhibao.sh").read_text()
    assert "CREATE DATABASE response OWNER response;" in init
    assert 'response_pw="$RESPONSE_DB_PASSWORD"' in init
    assert "response" in compose["services"]["prometheus"]["depends_on"]
