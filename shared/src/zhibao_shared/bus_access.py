"""Who may do what on the bus: one NATS user per service, and the operator.

This table is the single source of the bus's subject permissions. ``zhibao up``
renders it into the configuration of the nats-server it starts (with passwords it
generates, :mod:`zhibao_shared.bus_credentials`), ``deploy/nats/accounts.conf`` is
rendered from it (a test keeps the committed file equal), and the AsyncAPI
document states it.

What no service user may do, whatever it runs: change, purge or delete a stream
(services may only create a missing stream, which cannot alter an existing one),
delete or alter another service's consumer (each consumer is addressed by name),
delete messages, or read another user's replies (each user gets its replies on its own
inbox prefix, ``_INBOX.<user>.``, and may subscribe under no other). Only the operator
may. Community systems that speak NATS therefore connect with the inbox prefix
``_INBOX.community``, and intake answers no request whose reply subject lies elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zhibao_shared.subjects import (
    AUDIT_STREAM,
    DEAD_LETTER_STREAM,
    EVENTS_STREAM,
    INTAKE_SUBMIT,
    TASKS_ALL,
    TASKS_STREAM,
)

OPERATOR = "ops"
#: Service users, in the order ``zhibao up`` renders them.
SERVICE_USERS = ("intake", "aggregator", "alerts", "response", "dashboard")
#: The ingress user of community systems that speak NATS (request-reply to intake).
INGRESS_USER = "community"
ALL_USERS = (*SERVICE_USERS, INGRESS_USER, OPERATOR)
_JS = "$JS.API"


def inbox_prefix(user: str) -> str:
    """The reply-subject prefix a service user's connection uses (its private inbox)."""
    return f"_INBOX.{user}"


@dataclass(frozen=True)
class BusUser:
    """A NATS user: subjects it may publish and subscribe to (``None``: unrestricted)."""

    name: str
    purpose: str
    publish: tuple[str, ...] | None
    subscribe: tuple[str, ...] | None
    #: May answer requests (one reply each, to the requester's reply subject).
    responds: bool = False

    @property
    def unrestricted(self) -> bool:
        """True for the operator."""
        return self.publish is None and self.subscribe is None


def _stream_declaring(streams: Iterable[str]) -> tuple[str, ...]:
    """Read a stream's state and create it when missing; never update, purge or delete."""
    return tuple(
        subject
        for stream in streams
        for subject in (f"{_JS}.STREAM.INFO.{stream}", f"{_JS}.STREAM.CREATE.{stream}")
    )


def _consuming(durables: Sequence[str], stream: str = EVENTS_STREAM) -> tuple[str, ...]:
    """Create (or bind to), inspect, pull from and acknowledge the named durables only."""
    subjects: list[str] = []
    for name in durables:
        subjects += [
            f"{_JS}.CONSUMER.CREATE.{stream}.{name}",
            f"{_JS}.CONSUMER.CREATE.{stream}.{name}.>",
            f"{_JS}.CONSUMER.DURABLE.CREATE.{stream}.{name}",
            f"{_JS}.CONSUMER.INFO.{stream}.{name}",
            f"{_JS}.CONSUMER.MSG.NEXT.{stream}.{name}",
            f"$JS.ACK.{stream}.{name}.>",
        ]
    return tuple(subjects)


def tasks_durable(events_durable: str) -> str:
    """A service's durable consumer of the tasks stream, named after its events consumer
    (``aggregator`` reads tasks as ``aggregator-tasks``; a partition ``alerts-640106`` as
    ``alerts-640106-tasks``)."""
    return f"{events_durable}-tasks"


def care_durable(events_durable: str) -> str:
    """The alerts service's durable consumer of what key persons' watch reads on the
    tasks stream (tasks done, epidemic points): ``<durable>-care``."""
    return f"{events_durable}-care"


def _following(stream: str) -> tuple[str, ...]:
    """Create ephemeral consumers of ``stream`` and answer their flow control: an ordered
    push consumer replaying the stream to the user's own inbox (it reads, never acks)."""
    return (f"{_JS}.CONSUMER.CREATE.{stream}", f"$JS.FC.{stream}.>")


#: The aggregator's consumer of declared levels and epidemic points on the tasks stream
#: is named after its events consumer: ``<durable>-levels``.
LEVELS_CONSUMER_SUFFIX = "-levels"


def levels_durable(aggregator_durable: str) -> str:
    """The name of an aggregator's durable consumer of level and point messages."""
    return f"{aggregator_durable}{LEVELS_CONSUMER_SUFFIX}"


#: The aggregator's consumer of the audit trail is named after its events consumer:
#: ``<durable>-audit``.
AUDIT_CONSUMER_SUFFIX = "-audit"


def audit_durable(aggregator_durable: str) -> str:
    """The name of an aggregator's durable consumer of the audit stream."""
    return f"{aggregator_durable}{AUDIT_CONSUMER_SUFFIX}"


#: The response service's durable consumer of need events (each need becomes a task).
NEEDS_DURABLE = "response-needs"


def audit_subjects(service: str) -> str:
    """Where a service may append audit records: its own subjects only (no service can
    write a record in another's name)."""
    return f"zhibao.audit.{service}.>"


def bus_users(
    aggregator_durables: Sequence[str] = ("aggregator",),
    alerts_durables: Sequence[str] = ("alerts",),
) -> tuple[BusUser, ...]:
    """Every user of the bus with its permissions.

    A partitioned deployment names each partition's durable consumer (for example
    ``aggregator-640106``); its users are rendered with those names.
    """
    info = f"{_JS}.INFO"
    return (
        BusUser(
            "intake",
            "publishes accepted events and audit records; answers zhibao.intake.submit; "
            "follows the tasks stream (an ordered consumer of its own)",
            publish=(
                "zhibao.events.>",
                audit_subjects("intake"),
                info,
                *_stream_declaring((EVENTS_STREAM, DEAD_LETTER_STREAM, AUDIT_STREAM, TASKS_STREAM)),
                *_following(TASKS_STREAM),
            ),
            subscribe=(INTAKE_SUBMIT, f"{inbox_prefix('intake')}.>"),
            responds=True,
        ),
        BusUser(
            "aggregator",
            "reads events, task messages, declared levels and points, and the audit trail "
            "(own durables); publishes rollups, its dead letters and its audit records",
            publish=(
                "zhibao.rollups.>",
                "zhibao.deadletter.aggregator.>",
                audit_subjects("aggregator"),
                info,
                *_stream_declaring((EVENTS_STREAM, DEAD_LETTER_STREAM, TASKS_STREAM, AUDIT_STREAM)),
                *_consuming(aggregator_durables),
                *_consuming([tasks_durable(d) for d in aggregator_durables], TASKS_STREAM),
                # declared levels and epidemic points (the response service's messages)
                *_consuming([levels_durable(d) for d in aggregator_durables], TASKS_STREAM),
                # the audit trail, projected into its read model
                *_consuming([audit_durable(d) for d in aggregator_durables], AUDIT_STREAM),
            ),
            subscribe=(f"{inbox_prefix('aggregator')}.>",),
        ),
        BusUser(
            "alerts",
            "reads events and task messages (own durables); publishes alerts, its dead letters "
            "and its audit records",
            publish=(
                "zhibao.alerts.>",
                "zhibao.deadletter.alerts.>",
                audit_subjects("alerts"),
                info,
                *_stream_declaring((EVENTS_STREAM, DEAD_LETTER_STREAM, TASKS_STREAM, AUDIT_STREAM)),
                *_consuming(alerts_durables),
                *_consuming([tasks_durable(d) for d in alerts_durables], TASKS_STREAM),
                # tasks done and epidemic points, for key persons' watch
                *_consuming([care_durable(d) for d in alerts_durables], TASKS_STREAM),
            ),
            subscribe=(f"{inbox_prefix('alerts')}.>",),
        ),
        BusUser(
            "response",
            "publishes task events (issued, changed, overdue), declared levels and epidemic "
            "points to its stream; reads task results and needs "
            "through its durable consumers; publishes its dead letters and its audit records",
            publish=(
                TASKS_ALL,
                "zhibao.deadletter.response.>",
                audit_subjects("response"),
                info,
                *_stream_declaring((TASKS_STREAM, EVENTS_STREAM, DEAD_LETTER_STREAM, AUDIT_STREAM)),
                *_consuming(("response", NEEDS_DURABLE)),
            ),
            subscribe=(f"{inbox_prefix('response')}.>",),
        ),
        BusUser(
            "dashboard",
            "the command centre's live feed: subscribes to rollups and alerts; publishes nothing",
            publish=(),
            subscribe=("zhibao.rollups.>", "zhibao.alerts.>"),
        ),
        BusUser(
            INGRESS_USER,
            "community systems that speak NATS: requests on zhibao.intake.submit",
            publish=(INTAKE_SUBMIT,),
            # its own inbox prefix only: JetStream delivers to a service's inbox under the
            # message's own subject, so a deny of the services' inboxes under a wider allow
            # (``_INBOX.>``) did not stop a subscriber from receiving those deliveries
            subscribe=(f"{inbox_prefix(INGRESS_USER)}.>",),
        ),
        BusUser(OPERATOR, "operators: streams, consumers, rebuilds, replays", None, None),
    )


def bus_user(name: str, users: Iterable[BusUser] | None = None) -> BusUser:
    """One user of :func:`bus_users` by name."""
    for user in users if users is not None else bus_users():
        if user.name == name:
            return user
    raise KeyError(name)


def _subject_list(key: str, subjects: Iterable[str], indent: str) -> list[str]:
    """``key: [ ... ]`` with one quoted subject a line."""
    quoted = [f'{indent}  "{subject}"' for subject in subjects]
    return [f"{indent}{key}: [", *quoted, f"{indent}]"]


def _permissions_block(user: BusUser, indent: str) -> list[str]:
    """The ``permissions`` map of one user in nats-server's configuration syntax."""
    if user.unrestricted:
        return []
    inner, deeper = indent + "  ", indent + "    "
    lines = [f"{indent}permissions: {{", f"{inner}publish: {{"]
    if user.publish:
        lines += _subject_list("allow", user.publish, deeper)
    else:
        lines += _subject_list("deny", (">",), deeper)
    lines += [f"{inner}}}", f"{inner}subscribe: {{"]
    lines += _subject_list("allow", user.subscribe or (), deeper)
    lines.append(f"{inner}}}")
    if user.responds:
        lines.append(f'{inner}allow_responses: {{ max: 1, expires: "1m" }}')
    lines.append(f"{indent}}}")
    return lines


def render_users(users: Iterable[BusUser], passwords: dict[str, str], indent: str) -> list[str]:
    """The ``users`` list entries: each user with its password expression and permissions."""
    lines: list[str] = []
    for user in users:
        lines.append(f"{indent}{{")
        lines.append(f"{indent}  user: {user.name}, password: {passwords[user.name]}")
        lines += _permissions_block(user, indent + "  ")
        lines.append(f"{indent}}}")
    return lines


def quote_password(secret: str) -> str:
    """A password as a quoted nats-server configuration string."""
    if any(c in secret for c in '"\\\n'):
        raise ValueError("a bus password may not contain quotes, backslashes or newlines")
    return f'"{secret}"'


def accounts_block(users: Sequence[BusUser], passwords: dict[str, str]) -> str:
    """An ``accounts`` block: the users in account ZHIBAO (JetStream enabled)."""
    lines = ["accounts {", "  ZHIBAO {", "    jetstream: enabled", "    users: ["]
    lines += render_users(users, passwords, "      ")
    lines += ["    ]", "  }", "}"]
    return "\n".join(lines) + "\n"


def password_variable(user: str) -> str:
    """The environment variable nats-server reads a deployed user's password from."""
    return f"NATS_{user.upper()}_PASSWORD"


_DEPLOY_HEADER = """\
# Accounts, users and subject permissions for Zhibao (included by every node).
#
# GENERATED from zhibao_shared/bus_access.py by `zhibao bus-accounts > deploy/nats/accounts.conf`;
# do not edit by hand (tests/deploy/test_nats_config.py checks it is current). `zhibao up`
# renders the same users into the configuration of the nats-server it starts.
#
# Passwords are NOT in this file: nats-server reads $NATS_*_PASSWORD from the
# environment (compose passes them from deploy/.env; Kubernetes from a Secret).
# A partitioned deployment names each partition's durable consumer: render it with
# `zhibao bus-accounts --aggregator-durable aggregator-640104 --aggregator-durable ...`.
#
"""


def deploy_accounts_conf(
    aggregator_durables: Sequence[str] = ("aggregator",),
    alerts_durables: Sequence[str] = ("alerts",),
) -> str:
    """``deploy/nats/accounts.conf``: the users with passwords from the environment."""
    users = bus_users(aggregator_durables, alerts_durables)
    purposes = [f"#   {user.name:<11} {user.purpose}" for user in users]
    passwords = {user.name: f"${password_variable(user.name)}" for user in users}
    body = accounts_block(users, passwords).rstrip("\n")
    # The system account (monitoring, `nats server` commands) shares the accounts block.
    body = body[: body.rindex("}")] + (
        f"  SYS {{\n    users: [ {{ user: sys, password: ${password_variable('sys')} }} ]\n  }}\n}}"
    )
    return _DEPLOY_HEADER + "\n".join(purposes) + "\n\n" + body + "\nsystem_account: SYS\n"
