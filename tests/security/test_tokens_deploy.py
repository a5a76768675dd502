"""deploy/ puts every service instance on the one shared (PostgreSQL) token store."""

from __future__ import annotations

from tests.deploy.support import DEPLOY
from tests.deploy.test_compose import rendered
from tests.deploy.test_k8s import BASE, PORTS, by_kind
from zhibao_shared.tokens import store_url

SERVICES = tuple(PORTS)


def test_compose_gives_every_service_the_shared_token_database() -> None:
    compose = rendered()
    services = compose["services"]
    urls = {services[name]["environment"]["ZHIBAO_TOKENS_DATABASE_URL"] for name in SERVICES}
    [url] = urls
    assert store_url(url).startswith("postgresql+psycopg://tokens:")
    assert url.endswith("@postgres:5432/tokens")
    for name in SERVICES:
        assert "db" in services[name]["networks"], f"{name} cannot reach PostgreSQL"
    assert "TOKENS_DB_PASSWORD" in services["postgres"]["environment"]
    init = (DEPLOY / "postgres" / "init" / "10-zhibao.sh").read_text()
    assert "CREATE DATABASE tokens OWNER tokens" in init
    assert "TOKENS_DB_PASSWORD=" in (DEPLOY / "env.example").read_text()


def test_kubernetes_gives_every_service_the_shared_token_database() -> None:
    deployments = by_kind("Deployment")
    for name in SERVICES:
        [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        secret = env["ZHIBAO_TOKENS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert secret == {"name": "zhibao-secrets", "key": "tokens-database-url"}, name
    example = (DEPLOY / "k8s" / "overlays" / "example" / "secrets.env.example").read_text()
    assert "tokens-database-url=postgresql" in example
    assert "tokens.db" not in (BASE / "data-pvc.yaml").read_text()
