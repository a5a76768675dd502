"""The bus as an AsyncAPI 3.0.0 document, generated from the code (no I/O).

Channels come from :mod:`zhibao_shared.subjects`, payload schemas from the
contract's pydantic models (:mod:`zhibao_shared.events`,
:mod:`zhibao_shared.bus_messages`, intake's answer model passed in), and who may
publish or subscribe from :func:`zhibao_shared.bus_access.bus_users`, the table
nats-server's permissions are rendered from. Intake serves the document at
``GET /asyncapi.json``; ``zhibao asyncapi`` prints it.

The document describes the bus as a whole rather than one application: each
channel has a ``send`` operation naming the bus users allowed to publish on it
and a ``receive`` operation naming those allowed to subscribe (extension
``x-zhibao-bus-users``: user -> the parts of the channel's subjects it may use,
by NATS wildcard matching of its permissions), and, for subjects kept in a
JetStream stream, the users reading it through durable consumers
(``x-zhibao-stream-readers``; where a stream holds several channels, the durables
reading this one). A subject belongs to the channel whose address it fits, each
enumerated parameter taking one of its values (:meth:`ChannelSpec.carries`): the
tasks stream's task messages, declared levels and epidemic points are three channels.
``tests/security/test_asyncapi.py`` holds the document to what the running system
publishes and what nats-server enforces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from zhibao_shared import subjects
from zhibao_shared.bus_access import LEVELS_CONSUMER_SUFFIX, BusUser, bus_users, tasks_durable
from zhibao_shared.bus_messages import (
    ActionRecord,
    AlertNotification,
    AuditRecord,
    RefusalTallyRecord,
    RollupMessage,
    SubmitProblem,
)
from zhibao_shared.bus_permissions import matches, may_pull, names, publishable, subscribable
from zhibao_shared.consumer import (
    BUNDLE_INDEX_HEADER,
    DEAD_REASON_HEADER,
    ORIGINAL_SUBJECT_HEADER,
    STREAM_SEQUENCE_HEADER,
)
from zhibao_shared.events import (
    CONTENT_TYPE_BATCH,
    CONTENT_TYPE_SINGLE,
    PUBLISHED_EVENT,
    REPORTED_EVENT,
    EventType,
)
from zhibao_shared.hierarchy import Level
from zhibao_shared.response_events import LevelMessage, PointMessage
from zhibao_shared.task_events import TaskEvent, TaskMessage

ASYNCAPI_VERSION = "3.0.0"
#: Alert severities (zhibao_alerts.domain.config.Severity; a test keeps them equal).
SEVERITIES = ("critical", "warning", "info")
SCHEMAS = "#/components/schemas/"
_SUBMIT = "intakeSubmit"
_SUBMIT_REPLY = "intakeSubmitReply"
#: The durables of the tasks stream reading task messages end with this (``aggregator-tasks``).
TASKS_CONSUMER_SUFFIX = tasks_durable("")
#: The services appending to the audit trail, and the groups (subjects' last token).
AUDIT_SERVICES = ("intake", "alerts", "response", "aggregator")
AUDIT_GROUPS = (
    "submissions",
    "alerts",
    "silences",
    "tasks",
    "levels",
    "points",
    "templates",
    "audits",
)


@dataclass(frozen=True)
class ChannelSpec:
    """One channel: its address with ``{parameters}``, messages and what to know."""

    key: str
    address: str
    title: str
    description: str
    messages: tuple[str, ...]
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The parameter standing for the rest of the subject (NATS ``>``), if any.
    tail: str | None = None
    #: The JetStream stream keeping the channel's messages, if any.
    stream: str | None = None
    #: Where the stream holds other channels too: the suffix of the names of the
    #: durable consumers reading this channel (None: every reader of the stream).
    consumers: str | None = None

    def pattern(self) -> str:
        """The address as a NATS subject filter (``*`` per parameter)."""
        tokens = self.address.split(".")
        out = [self._wildcard(t) if t.startswith("{") else t for t in tokens]
        return ".".join(out)

    def carries(self, subject: str) -> bool:
        """True when the concrete ``subject`` is one of this channel's: it matches the
        address and each enumerated parameter takes one of its values."""
        if not matches(self.pattern(), subject):
            return False
        parts = subject.split(".")
        for index, token in enumerate(self.address.split(".")):
            name = token.strip("{}")
            if token.startswith("{") and name != self.tail:
                allowed = self.parameters.get(name, {}).get("enum")
                if allowed is not None and parts[index] not in allowed:
                    return False
        return True

    def _wildcard(self, token: str) -> str:
        return ">" if token.strip("{}") == self.tail else "*"


def _param(description: str, enum: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if enum:
        out["enum"] = enum
    return out


DISTRICT = _param("6-digit district code; consumers partition by district with this token")
COMMUNITY = _param("12-digit community code (it starts with its district's code)")

CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec(
        "events",
        "zhibao.events.{district}.{community}.{type}",
        "Accepted events, one a message",
        "Every event intake accepted, in its published form (person pseudonymised, "
        "reporter and receivedat added), in stream ZHIBAO_EVENTS. Partitioned by district: "
        "subscribe to zhibao.events.<district>.> for one district (bundles included). "
        "Nats-Msg-Id is the event's identity (subject + source + id), so JetStream "
        "refuses a repeat within its duplicate window; consumers de-duplicate each event "
        "by subject + source + id. A task result (type task_result) carries the task's "
        "person (pseudonym) and kind as intake knew them, and its note only sealed for the "
        "response service (sealed_note), never in the clear.",
        ("publishedEvent",),
        {
            "district": DISTRICT,
            "community": COMMUNITY,
            "type": _param("The event type's short name", [t.short for t in EventType]),
        },
        stream=subjects.EVENTS_STREAM,
    ),
    ChannelSpec(
        "eventBundles",
        "zhibao.events.{district}.bundle",
        "Accepted events of one district, several a message",
        "A CloudEvents JSON batch of up to ZHIBAO_INTAKE_BUNDLE_EVENTS events of one "
        "district, in stream ZHIBAO_EVENTS. Nats-Msg-Id is a digest of the events' "
        "identities; an event may reach the stream twice (resent in another bundle), so "
        "consumers de-duplicate each event by subject + source + id, as for single events.",
        ("eventBundle",),
        {"district": DISTRICT},
        stream=subjects.EVENTS_STREAM,
    ),
    ChannelSpec(
        "rollups",
        "zhibao.rollups.{level}.{code}",
        "Changed rollups",
        "A unit's figures for a day (the last 7 days), published by the aggregator when "
        "they change, at most once per ZHIBAO_AGGREGATOR_PUBLISH_INTERVAL_S per unit and "
        "day. Core NATS (not kept in a stream): each message replaces the previous one "
        "for its unit and date, so a subscriber that missed some reads the current "
        "figures over HTTP (GET /v1/units/{code}/rollup).",
        ("rollup",),
        {
            "level": _param("The unit's level", [lv.value for lv in Level]),
            "code": _param("The unit's code (4, 6, 9 or 12 digits)"),
        },
    ),
    ChannelSpec(
        "alerts",
        "zhibao.alerts.{severity}.{district}",
        "Alerts raised",
        "An alert when it fires (or fires again after a silence ends), as an "
        "Alertmanager v4 webhook body; alerts of one unit and rule raised together come "
        "as one message. Core NATS, delivered from the alerts service's outbox at least "
        "once: identify an alert by its fingerprint.",
        ("alertNotification",),
        {
            "severity": _param("The alert's severity", list(SEVERITIES)),
            "district": DISTRICT,
        },
    ),
    ChannelSpec(
        "deadLetters",
        "zhibao.deadletter.{service}.{subject}",
        "Messages a consumer gave up on",
        "A message (or one event of a bundle) a consumer could not process, kept in "
        "stream ZHIBAO_DEADLETTER for operators; the original subject follows the "
        "service's name. Nats-Msg-Id is <durable>:<stream>:<sequence>[:<bundle index>].",
        ("deadLetter",),
        {
            "service": _param("The consumer that parked it", ["aggregator", "alerts", "response"]),
            "subject": _param("The original subject (several tokens)"),
        },
        tail="subject",
        stream=subjects.DEAD_LETTER_STREAM,
    ),
    ChannelSpec(
        "audit",
        "zhibao.audit.{service}.{action}",
        "Audit trail",
        "Who did what, in stream ZHIBAO_AUDIT, which refuses deletes and purges: intake's "
        "submissions (token, channel, per event id, source, community, type and outcome; "
        "refusals without a valid token as counts per window) and the services' actions "
        "(an action record: acting token and person, action in the past tense, unit, "
        "target, a short detail). Records carry no personal data. The aggregator projects "
        "the trail into its read model (GET /v1/audit).",
        ("auditRecords",),
        {
            "service": _param("The service writing the trail", list(AUDIT_SERVICES)),
            "action": _param(
                "What was audited: intake's submissions, or an action's first word in "
                "the plural (alerts, silences, tasks, levels, points, templates, audits)",
                list(AUDIT_GROUPS),
            ),
        },
        stream=subjects.AUDIT_STREAM,
    ),
    ChannelSpec(
        "tasks",
        "zhibao.tasks.{district}.{unit}.{event}",
        "Tasks pushed down to communities",
        "Published by the response service when a task is issued, changes state "
        "(accepted, done, unreachable, refused, transferred, cancelled) or passes its due "
        "time still open (once). Carries the task's id, unit, kind, due time, state and "
        "the person's pseudonym only: personal details stay in the response service. In "
        "stream ZHIBAO_TASKS (90 days), written from the service's outbox; Nats-Msg-Id "
        "is the message's identity, so a resend within the duplicate window is dropped. "
        "The stream also holds declared levels and epidemic points (channels levels and "
        "points): a task consumer filters on the events below "
        "(zhibao.tasks.<district>.*.<event>, one filter per event).",
        ("taskMessage",),
        {
            "district": DISTRICT,
            "unit": _param("The unit the task is assigned to (6, 9 or 12 digits)"),
            "event": _param("What happened", [e.value for e in TaskEvent]),
        },
        stream=subjects.TASKS_STREAM,
        consumers=TASKS_CONSUMER_SUFFIX,
    ),
    ChannelSpec(
        "levels",
        "zhibao.tasks.{district}.{unit}.level",
        "Response levels declared",
        "Published by the response service on every declaration of a unit's response "
        "level (POST /v1/levels): red, orange, yellow or blue (grades I to IV), or null "
        "when the level is lifted. A full snapshot of the declaration (never changed "
        "afterwards), numbered per unit: the highest number is in force. Units, times and "
        "the declaring token's name only: the reason stays in the response service. In "
        "stream ZHIBAO_TASKS beside the task messages, written from the service's outbox; "
        "Nats-Msg-Id is the message's identity. Store it keyed by its declaration.",
        ("levelMessage",),
        {
            "district": DISTRICT,
            "unit": _param("The unit the level is declared for (6, 9 or 12 digits)"),
        },
        stream=subjects.TASKS_STREAM,
        consumers=LEVELS_CONSUMER_SUFFIX,
    ),
    ChannelSpec(
        "points",
        "zhibao.tasks.{district}.{community}.point",
        "Epidemic points declared and lifted",
        "Published by the response service when an epidemic point (疫点: a compound "
        "and/or a building of a community) is declared (POST /v1/points, event "
        "point_declared) or lifted (point_lifted, with lifted_at and lifted_by). Each "
        "message is the point as it stands: store it keyed by its point id. Labels, "
        "times and token names only: no reason text, nobody's personal data. In stream "
        "ZHIBAO_TASKS beside the task messages, written from the service's outbox; "
        "Nats-Msg-Id is the message's identity.",
        ("pointMessage",),
        {"district": DISTRICT, "community": COMMUNITY},
        stream=subjects.TASKS_STREAM,
        consumers=LEVELS_CONSUMER_SUFFIX,
    ),
    ChannelSpec(
        _SUBMIT,
        subjects.INTAKE_SUBMIT,
        "Submit events (request-reply ingress)",
        "For community systems that speak NATS: a request carrying the same CloudEvents "
        "JSON as POST /v1/events and an Authorization: Bearer <token> header; intake "
        "instances answer in queue group 'intake' with the same answer as HTTP plus the "
        "HTTP-equivalent status. Resending the same events is safe: they are answered "
        "'duplicate' and stored once.",
        ("reportedSubmission",),
    ),
)


def _headers(properties: dict[str, str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A headers schema: each header a string with a description."""
    return {
        "type": "object",
        "properties": {k: {"type": "string", "description": v} for k, v in properties.items()},
        "required": list(required),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def _messages() -> dict[str, dict[str, Any]]:
    """Every message: payload schemas refer to components.schemas."""
    msg_id = {"Nats-Msg-Id": "The de-duplication identity"}
    dead = {
        DEAD_REASON_HEADER: "Why it was parked",
        ORIGINAL_SUBJECT_HEADER: "The subject it was read from",
        STREAM_SEQUENCE_HEADER: "Its sequence in ZHIBAO_EVENTS",
        **msg_id,
        BUNDLE_INDEX_HEADER: "For one event of a bundle: its index in the bundle",
    }
    auth = {"Authorization": "Bearer <report token>", "content-type": "optional, as over HTTP"}
    return {
        "publishedEvent": _message(
            "PublishedEvent", CONTENT_TYPE_SINGLE, _headers(msg_id, ("Nats-Msg-Id",))
        ),
        "eventBundle": _message(
            "EventBundle", CONTENT_TYPE_BATCH, _headers(msg_id, ("Nats-Msg-Id",))
        ),
        "rollup": _message("RollupMessage", "application/json"),
        "alertNotification": _message("AlertNotification", "application/json"),
        "taskMessage": _message(
            "TaskMessage", "application/json", _headers(msg_id, ("Nats-Msg-Id",))
        ),
        "levelMessage": _message(
            "LevelMessage", "application/json", _headers(msg_id, ("Nats-Msg-Id",))
        ),
        "pointMessage": _message(
            "PointMessage", "application/json", _headers(msg_id, ("Nats-Msg-Id",))
        ),
        "deadLetter": _message(
            "DeadLetterPayload", "application/octet-stream", _headers(dead, tuple(dead)[:4])
        ),
        "auditRecords": _message("AuditLine", "application/jsonl"),
        "reportedSubmission": _message("ReportedSubmission", "application/json", _headers(auth)),
        "submissionAnswer": _message("SubmissionAnswer", "application/json"),
    }


def _message(
    schema: str, content_type: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": schema,
        "contentType": content_type,
        "payload": _ref(schema),
    }
    if headers is not None:
        message["headers"] = headers
    if content_type == "application/jsonl":
        message["description"] = "One or more records as JSON lines: each line is one record."
    return message


def _asyncapi_schema(node: Any) -> Any:
    """A pydantic JSON Schema as an AsyncAPI Schema: ``discriminator`` is the property name
    (pydantic writes OpenAPI's object form)."""
    if isinstance(node, list):
        return [_asyncapi_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _asyncapi_schema(value) for key, value in node.items()}
    if isinstance(out.get("discriminator"), dict):
        out["discriminator"] = out["discriminator"]["propertyName"]
    return out


def _merge(target: dict[str, Any], schema: dict[str, Any], name: str) -> None:
    """Add ``schema`` as ``name`` and its ``$defs`` to ``target``, refusing clashes."""
    schema = _asyncapi_schema(schema)
    for key, value in {**schema.pop("$defs", {}), name: schema}.items():
        if key in target and target[key] != value:
            raise ValueError(f"two different schemas are named {key}")
        target[key] = value


def _model(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template=SCHEMAS + "{model}")


def _schemas(submission_result: type[BaseModel]) -> dict[str, Any]:
    """components.schemas: the payloads and every model they refer to."""
    out: dict[str, Any] = {}
    template = SCHEMAS + "{model}"
    _merge(out, PUBLISHED_EVENT.json_schema(ref_template=template), "PublishedEvent")
    _merge(out, REPORTED_EVENT.json_schema(ref_template=template), "ReportedEvent")
    for model in (
        RollupMessage,
        AlertNotification,
        TaskMessage,
        LevelMessage,
        PointMessage,
        AuditRecord,
        RefusalTallyRecord,
        ActionRecord,
        SubmitProblem,
        submission_result,
    ):
        _merge(out, _model(model), model.__name__)
    out["AuditLine"] = {
        "description": "One line of the audit trail: a submission, a tally of refusals "
        "or an action",
        "oneOf": [_ref("AuditRecord"), _ref("RefusalTallyRecord"), _ref("ActionRecord")],
    }
    out["EventBundle"] = _array("PublishedEvent", "A CloudEvents JSON batch")
    out["ReportedSubmission"] = {"oneOf": [_ref("ReportedEvent"), _array("ReportedEvent", "")]}
    out["DeadLetterPayload"] = {
        "description": "The original message's bytes (for a bundle's event: that event's JSON)"
    }
    out["SubmissionAnswer"] = _answer(submission_result.__name__)
    return out


def _array(item: str, description: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": _ref(item), "minItems": 1}
    if description:
        schema["description"] = description
    return schema


def _answer(result: str) -> dict[str, Any]:
    """Intake's reply: the HTTP answer plus its status, or a refusal as a whole."""
    status = {
        "type": "object",
        "properties": {
            "status": {"type": "integer", "description": "The HTTP-equivalent status"},
            "retry_after": {"type": "integer", "description": "Seconds to wait (429, 503)"},
        },
        "required": ["status"],
    }
    return {"anyOf": [{"allOf": [_ref(result), status]}, _ref(SubmitProblem.__name__)]}


def _channels() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for spec in CHANNELS:
        channel: dict[str, Any] = {
            "address": spec.address,
            "title": spec.title,
            "description": spec.description,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in spec.messages},
        }
        if spec.parameters:
            channel["parameters"] = spec.parameters
        channels[spec.key] = channel
    channels[_SUBMIT_REPLY] = {
        "address": None,
        "title": "Answers to zhibao.intake.submit",
        "description": (
            "The requester's reply subject, set per request: a community system's inbox "
            "(_INBOX.community.>); intake answers no other."
        ),
        "messages": {"submissionAnswer": {"$ref": "#/components/messages/submissionAnswer"}},
    }
    return channels


Permitted = dict[str, list[str]]


def _operation(action: str, spec: ChannelSpec, users: Permitted) -> dict[str, Any]:
    verb = "publish on" if action == "send" else "subscribe to"
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{spec.key}"},
        "summary": f"Bus users allowed to {verb} {spec.pattern()}: {', '.join(users)}",
        "messages": [{"$ref": f"#/channels/{spec.key}/messages/{m}"} for m in spec.messages],
        "security": [{"$ref": "#/components/securitySchemes/userPassword"}],
        "x-zhibao-bus-users": users,
    }


def _permitted(users: tuple[BusUser, ...], pattern: str, send: bool) -> Permitted:
    """Each user allowed some of ``pattern``, with the subjects of it it may use."""
    parts = ((u.name, (publishable if send else subscribable)(u, pattern)) for u in users)
    return {name: subjects for name, subjects in parts if subjects}


def _operations(users: tuple[BusUser, ...]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for spec in CHANNELS:
        pattern = spec.pattern()
        send = _operation("send", spec, _permitted(users, pattern, send=True))
        receive = _operation("receive", spec, _permitted(users, pattern, send=False))
        if spec.stream is not None:
            receive["x-zhibao-stream-readers"] = _readers(spec, spec.stream, users)
        operations[f"send_{spec.key}"] = send
        operations[f"receive_{spec.key}"] = receive
    _add_reply(operations, users)
    return operations


def _readers(spec: ChannelSpec, stream: str, users: tuple[BusUser, ...]) -> dict[str, Any]:
    """Who reads the channel from its stream through durable consumers (and which)."""
    if spec.consumers is None:
        return {"stream": stream, "users": names(u for u in users if may_pull(u, stream))}
    durables = {u.name: _durables(u, stream, spec.consumers) for u in users}
    readers = [u for u in users if u.publish is None or durables[u.name]]
    return {
        "stream": stream,
        "users": names(readers),
        "durables": {name: found for name, found in durables.items() if found},
    }


def _durables(user: BusUser, stream: str, suffix: str) -> list[str]:
    """The durables of ``stream`` whose names end with ``suffix`` that ``user`` may pull."""
    prefix = f"$JS.API.CONSUMER.MSG.NEXT.{stream}."
    allowed = user.publish or ()
    return [a.removeprefix(prefix) for a in allowed if a.startswith(prefix) and a.endswith(suffix)]


def _add_reply(operations: dict[str, Any], users: tuple[BusUser, ...]) -> None:
    """Request-reply on zhibao.intake.submit: who answers, who may read the answers."""
    reply = {
        "channel": {"$ref": f"#/channels/{_SUBMIT_REPLY}"},
        "messages": [{"$ref": f"#/channels/{_SUBMIT_REPLY}/messages/submissionAnswer"}],
    }
    requesters = operations[f"send_{_SUBMIT}"]
    requesters["reply"] = reply
    inboxes = _permitted(users, "_INBOX.>", send=False)
    requesters["x-zhibao-reply-readers"] = {
        name: inboxes[name] for name in requesters["x-zhibao-bus-users"] if name in inboxes
    }
    answerers = operations[f"receive_{_SUBMIT}"]
    answerers["reply"] = reply
    answerers["bindings"] = {"nats": {"queue": subjects.INTAKE_QUEUE, "bindingVersion": "0.1.0"}}
    answerers["x-zhibao-reply-senders"] = names(u for u in users if u.responds or u.unrestricted)


def _users(users: tuple[BusUser, ...]) -> list[dict[str, Any]]:
    """The bus users and their purpose, as an extension of ``info``."""
    return [{"name": u.name, "purpose": u.purpose} for u in users]


def asyncapi_document(
    submission_result: type[BaseModel], users: tuple[BusUser, ...] | None = None
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the bus.

    ``submission_result`` is intake's answer model (``zhibao_intake.domain.outcome``),
    passed in because the contract package cannot import a service.
    """
    table = users if users is not None else bus_users()
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:zhibao:bus",
        "info": _info(table),
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": _channels(),
        "operations": _operations(table),
        "components": {
            "schemas": _schemas(submission_result),
            "messages": _messages(),
            "securitySchemes": {
                "userPassword": {
                    "type": "userPassword",
                    "description": "One NATS user per service, the community ingress user "
                    "and the operator (see x-zhibao-bus-users); zhibao up generates the "
                    "passwords into the data directory.",
                }
            },
        },
    }


def _info(users: tuple[BusUser, ...]) -> dict[str, Any]:
    return {
        "title": "Zhibao bus",
        "version": "1.0.0",
        "description": (
            "The NATS subjects of Zhibao (直报): accepted events, rollups, alerts, tasks, "
            "declared response levels, epidemic points, dead letters, the audit trail and "
            "the request-reply ingress. Operations list, per "
            "channel, the bus users allowed to publish (send) and subscribe (receive) as "
            "nats-server enforces them. Every other subject a service uses is the "
            "JetStream API ($JS.API.>, $JS.ACK.>) and inbox replies (_INBOX.>)."
        ),
        "x-zhibao-bus-users": _users(users),
    }


def _servers() -> dict[str, Any]:
    security = [{"$ref": "#/components/securitySchemes/userPassword"}]
    return {
        "embedded": {
            "host": "127.0.0.1:4222",
            "protocol": "nats",
            "description": "The nats-server `zhibao up` starts (ZHIBAO_NATS_URL). User and "
            "password per bus user; `zhibao bus-url` prints the operator's URL.",
            "security": security,
        },
        "deployment": {
            "host": "nats:4222",
            "protocol": "nats",
            "description": "The deployment's three-node cluster (deploy/nats, "
            "deploy/compose.yaml): the same users and permissions (deploy/nats/accounts.conf), "
            "passwords from deploy/.env; clients must use TLS (tls://user:password@nats:4222, "
            "certificates from deploy/nats/tls).",
            "security": security,
        },
    }
