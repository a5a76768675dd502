"""Prometheus: the scrape config and the system's alerting rules, checked by promtool."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.support import DEPLOY, defined_metrics, used_metrics

PROMETHEUS = DEPLOY / "prometheus"
#: The port each service serves /metrics on (the aggregator's is its own, off the public one).
SERVICE_PORTS = {"intake": 8101, "aggregator": 9102, "alerts": 8103, "response": 8104}


def _install_promtool() -> None:
    """apt-get install Debian's prometheus package (root only; bounded)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "prometheus"]):
        subprocess.run(args, env=env, capture_output=True, timeout=600, check=False)


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from Debian's prometheus package; installed here when running as root.

    Skipped only where it cannot be installed (not root); as root a failed install fails.
    """
    found = shutil.which("promtool")
    if found is None and os.geteuid() == 0:
        _install_promtool()
        found = shutil.which("promtool")
        if found is None:
            pytest.fail("promtool missing and `apt-get install prometheus` did not provide it")
    if found is None:
        pytest.skip("promtool not installed and not root: `apt-get install prometheus` needed")
    return found


def run(promtool: str, *args: str, cwd: Path | None = None) -> str:
    """Run promtool; fail with its output when it does."""
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_prometheus_config_is_valid_with_its_rules(promtool: str, tmp_path: Path) -> None:
    """promtool check config, with rule_files pointing at the shipped rules (as mounted)."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(PROMETHEUS / "rules" / "*.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    output = run(promtool, "check", "config", str(local))
    assert "SUCCESS" in output
    assert "rules found" in output  # the rules were loaded through the config


def test_rules_are_valid(promtool: str) -> None:
    """promtool check rules."""
    assert "SUCCESS" in run(promtool, "check", "rules", str(PROMETHEUS / "rules" / "zhibao.yml"))


def test_rules_unit_tests_pass(promtool: str) -> None:
    """promtool test rules: each alert fires when it should and not when it should not."""
    for test_file in sorted((PROMETHEUS / "tests").glob("*.yml")):
        assert "SUCCESS" in run(promtool, "test", "rules", test_file.name, cwd=test_file.parent)


def test_rules_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """A rule file with a changed threshold makes the unit tests fail (they test something)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    rules = (PROMETHEUS / "rules" / "zhibao.yml").read_text()
    assert "> 10000" in rules
    (tmp_path / "rules" / "zhibao.yml").write_text(rules.replace("> 10000", "> 30000"))
    shutil.copy(PROMETHEUS / "tests" / "zhibao_test.yml", tmp_path / "tests")
    result = subprocess.run(
        [promtool, "test", "rules", "zhibao_test.yml"],
        cwd=tmp_path / "tests",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ZhibaoConsumerLagHigh" in result.stdout + result.stderr


def test_every_service_is_scraped_on_its_port() -> None:
    """One scrape job per service, at its port, on /metrics."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service, port in SERVICE_PORTS.items():
        job = jobs[service]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        targets = [t for sc in job["static_configs"] for t in sc["targets"]]
        assert targets == [f"{service}:{port}"]


def test_rules_cover_what_the_issue_asks() -> None:
    """Intake errors, consumer lag, notification failures and a service down are alerted on."""
    rules = yaml.safe_load((PROMETHEUS / "rules" / "zhibao.yml").read_text())
    exprs = " ".join(rule["expr"] for group in rules["groups"] for rule in group["rules"])
    for metric in (
        "up{",
        "zhibao_intake_events_rejected_total",
        "zhibao_intake_events_unavailable_total",
        "zhibao_consumer_lag",
        "zhibao_alerts_notifications_failed_total",
        "zhibao_alerts_notification_oldest_pending_timestamp_seconds",
        "zhibao_alerts_dispatcher_last_pass_timestamp_seconds",
        "zhibao_response_outbox_pending",
    ):
        assert metric in exprs, metric


def test_rules_use_only_metrics_the_services_define() -> None:
    """A renamed metric would silently disable an alert: every name must exist in the code."""
    text = (PROMETHEUS / "rules" / "zhibao.yml").read_text()
    used = used_metrics(text)
    assert used, "no zhibao_ metric in the rules"
    assert used <= defined_metrics(), sorted(used - defined_metrics())


def test_every_service_is_watched_for_being_down() -> None:
    """ZhibaoServiceDown covers every scrape job of a Zhibao service."""
    rules = yaml.safe_load((PROMETHEUS / "rules" / "zhibao.yml").read_text())
    alerting = [rule for group in rules["groups"] for rule in group["rules"]]
    [down] = [rule for rule in alerting if rule.get("alert") == "ZhibaoServiceDown"]
    for service in SERVICE_PORTS:
        assert service in down["expr"].split('"')[1].split("|")
