"""Structural checks of an AsyncAPI 3.0.0 document (the fields the specification requires).

No wheel ships the official AsyncAPI 3.0.0 JSON Schema, so these check what the
specification requires of the parts the document uses: the version, info,
servers, channels (address parameters declared, messages resolvable),
operations (action, channel, messages of that channel, reply), messages and
their payload schemas (valid JSON Schemas), and that every ``$ref`` resolves.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator

_PARAMETER = re.compile(r"\{([^}]+)\}")
_KEY = re.compile(r"^[A-Za-z0-9.\-_]+$")
_PARAMETER_FIELDS = {"enum", "default", "description", "examples", "location"}


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The object a local ``$ref`` points to (KeyError when it points nowhere)."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _dangling(document: dict[str, Any]) -> list[str]:
    problems = []
    for ref in _refs(document):
        try:
            resolve(document, ref)
        except (KeyError, TypeError):
            problems.append(f"$ref {ref} resolves to nothing")
    return problems


def _top(document: dict[str, Any]) -> list[str]:
    problems = []
    if document.get("asyncapi") != "3.0.0":
        problems.append("asyncapi must be 3.0.0")
    info = document.get("info", {})
    if not (isinstance(info.get("title"), str) and isinstance(info.get("version"), str)):
        problems.append("info needs a title and a version")
    for name, server in document.get("servers", {}).items():
        if not (isinstance(server.get("host"), str) and isinstance(server.get("protocol"), str)):
            problems.append(f"server {name} needs host and protocol")
    return problems


def _channel(name: str, channel: dict[str, Any]) -> list[str]:
    problems = [] if _KEY.match(name) else [f"channel key {name} has invalid characters"]
    address = channel.get("address")
    if address is not None and not isinstance(address, str):
        problems.append(f"channel {name}: address must be a string or null")
    named = set(_PARAMETER.findall(address or ""))
    declared = set(channel.get("parameters", {}))
    if named != declared:
        problems.append(f"channel {name}: parameters {declared} != address's {named}")
    for key, parameter in channel.get("parameters", {}).items():
        if set(parameter) - _PARAMETER_FIELDS:
            problems.append(f"channel {name}: parameter {key} has unknown fields")
    if not channel.get("messages"):
        problems.append(f"channel {name} has no messages")
    return problems


def _operation(name: str, operation: dict[str, Any]) -> list[str]:
    problems = []
    if operation.get("action") not in ("send", "receive"):
        problems.append(f"operation {name}: action must be send or receive")
    channel_ref = operation.get("channel", {}).get("$ref", "")
    if not channel_ref.startswith("#/channels/"):
        problems.append(f"operation {name}: channel must refer to a channel")
    problems += _own_messages(name, channel_ref, operation.get("messages", []))
    reply = operation.get("reply")
    if reply is not None:
        reply_channel = reply.get("channel", {}).get("$ref", "")
        if not reply_channel.startswith("#/channels/"):
            problems.append(f"operation {name}: reply channel must refer to a channel")
        problems += _own_messages(f"{name} reply", reply_channel, reply.get("messages", []))
    return problems


def _own_messages(name: str, channel_ref: str, messages: list[dict[str, str]]) -> list[str]:
    """The specification: an operation's messages must be messages of its channel."""
    return [
        f"operation {name}: message {m['$ref']} is not one of {channel_ref}'s"
        for m in messages
        if not m["$ref"].startswith(f"{channel_ref}/messages/")
    ]


def _messages(document: dict[str, Any]) -> list[str]:
    problems = []
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as exc:
            problems.append(f"schema {name} is not a JSON Schema: {exc}")
    for name, message in document["components"]["messages"].items():
        if "payload" not in message or not isinstance(message.get("contentType"), str):
            problems.append(f"message {name} needs a payload and a contentType")
    return problems


def asyncapi_problems(document: dict[str, Any]) -> list[str]:
    """Everything in ``document`` that an AsyncAPI 3.0.0 document may not be."""
    problems = _top(document) + _dangling(document) + _messages(document)
    for name, channel in document.get("channels", {}).items():
        problems += _channel(name, channel)
    for name, operation in document.get("operations", {}).items():
        problems += _operation(name, operation)
    return problems
