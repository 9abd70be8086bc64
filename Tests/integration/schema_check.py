"""Validates JSON-RPC messages the host sends against the official MCP JSON Schemas.

The schemas live in Tests/fixtures/schema/<revision>/schema.json (copied from the MCP specification
repository, snapshot 2026-08-22, commit b0f60ba5; see the README there). Each revision is validated with
the validator its `$schema` declares (draft-07 for 2025-06-18, 2020-12 for the later ones) and a
`referencing` registry, so `$ref`s into `definitions` / `$defs` resolve inside the same document.

Which revision validates what:
- 2026-07-28 messages (stateless requests with per-request _meta) against 2026-07-28;
- 2025-11-25 sessions against 2025-11-25; 2025-06-18 sessions against 2025-06-18;
- 2025-03-26 sessions against 2025-06-18: no 2025-03-26 schema is stored, and 2025-06-18 is the closest
  revision (same message shapes for everything the host sends, minus additions it does not use).
- Error responses without an `id` (HTTP-level rejections sent before the host knows the request: 403, 406,
  413, 415, ...) on the legacy side are validated against 2025-11-25: the 2025-06-18 schema requires `id` on
  every error response although its transport text allows such id-less bodies, and 2025-11-25 fixed that.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "schema"

MODERN = "2026-07-28"
LEGACY = ("2025-11-25", "2025-06-18", "2025-03-26")

# Protocol revision -> stored schema revision.
SCHEMA_FOR_VERSION = {
    "2026-07-28": "2026-07-28",
    "2025-11-25": "2025-11-25",
    "2025-06-18": "2025-06-18",
    "2025-03-26": "2025-06-18",  # no 2025-03-26 schema is stored; see the module docstring
}

# Method -> the schema definition of its result object.
RESULT_DEFS = {
    "server/discover": "DiscoverResult",
    "initialize": "InitializeResult",
    "ping": "EmptyResult",
    "logging/setLevel": "EmptyResult",
    "tools/list": "ListToolsResult",
    "tools/call": "CallToolResult",
    "resources/list": "ListResourcesResult",
    "resources/templates/list": "ListResourceTemplatesResult",
    "resources/read": "ReadResourceResult",
    "prompts/list": "ListPromptsResult",
    "prompts/get": "GetPromptResult",
    "completion/complete": "CompleteResult",
    "resources/subscribe": "EmptyResult",
    "resources/unsubscribe": "EmptyResult",
    "subscriptions/listen": "SubscriptionsListenResult",
}
# Methods whose 2026-07-28 result may instead be an InputRequiredResult (basic/patterns/mrtr.mdx).
INPUT_REQUIRED_METHODS = {"tools/call", "prompts/get", "resources/read"}
# Requests a legacy server may send the client on a response stream (2025-11-25 and earlier).
SERVER_REQUEST_DEFS = {
    "elicitation/create": "ElicitRequest",
    "sampling/createMessage": "CreateMessageRequest",
    "roots/list": "ListRootsRequest",
}

# 2026-07-28 names whole responses for most methods (e.g. CallToolResultResponse); used when present.
# JSON-RPC error code -> definition of the inner error object (2026-07-28 only).
ERROR_OBJECT_DEFS = {
    -32700: "ParseError",
    -32600: "InvalidRequestError",
    -32601: "MethodNotFoundError",
    -32602: "InvalidParamsError",
    -32603: "InternalError",
}
# JSON-RPC error code -> definition of the whole error response (2026-07-28 only).
ERROR_RESPONSE_DEFS = {
    -32020: "HeaderMismatchError",
    -32021: "MissingRequiredClientCapabilityError",
    -32022: "UnsupportedProtocolVersionError",
}
NOTIFICATION_DEFS = {
    "notifications/progress": "ProgressNotification",
    "notifications/message": "LoggingMessageNotification",
    "notifications/tools/list_changed": "ToolListChangedNotification",
    "notifications/resources/list_changed": "ResourceListChangedNotification",
    "notifications/prompts/list_changed": "PromptListChangedNotification",
    "notifications/resources/updated": "ResourceUpdatedNotification",
    "notifications/subscriptions/acknowledged": "SubscriptionsAcknowledgedNotification",
    "notifications/cancelled": "CancelledNotification",
}


class SchemaViolation(AssertionError):
    """A message does not validate against its revision's schema."""


@lru_cache(maxsize=None)
def _document(schema_revision: str) -> dict:
    return json.loads((SCHEMA_DIR / schema_revision / "schema.json").read_text())


def _uri(schema_revision: str) -> str:
    return f"urn:mcp-schema:{schema_revision}"


@lru_cache(maxsize=None)
def _setup(schema_revision: str):
    doc = _document(schema_revision)
    declared = doc.get("$schema", "")
    if "draft-07" in declared:
        spec, validator_cls, defs_key = DRAFT7, jsonschema.Draft7Validator, "definitions"
    elif "2020-12" in declared:
        spec, validator_cls, defs_key = DRAFT202012, jsonschema.Draft202012Validator, "$defs"
    else:  # pragma: no cover - a new schema dialect needs a look
        raise AssertionError(f"{schema_revision}: unexpected $schema {declared!r}")
    registry: Registry = Registry().with_resource(_uri(schema_revision), Resource.from_contents(doc, default_specification=spec))
    return validator_cls, defs_key, registry


def schema_revision(protocol_version: str) -> str:
    """The stored schema revision that validates messages of `protocol_version`."""
    try:
        return SCHEMA_FOR_VERSION[protocol_version]
    except KeyError:
        raise AssertionError(f"no schema for protocol version {protocol_version!r}") from None


def has_definition(protocol_version: str, name: str) -> bool:
    rev = schema_revision(protocol_version)
    _, defs_key, _ = _setup(rev)
    return name in _document(rev)[defs_key]


def validate(instance: Any, definition: str, protocol_version: str) -> None:
    """Validates `instance` against `#/$defs/<definition>` (or `#/definitions/...`) of the version's schema."""
    rev = schema_revision(protocol_version)
    validator_cls, defs_key, registry = _setup(rev)
    if definition not in _document(rev)[defs_key]:
        raise AssertionError(f"schema {rev} has no definition {definition!r}")
    schema = {"$ref": f"{_uri(rev)}#/{defs_key}/{definition}"}
    validator = validator_cls(schema, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for e in errors[:5]:
            path = "/".join(str(p) for p in e.absolute_path) or "(root)"
            lines.append(f"  at {path}: {e.message[:300]}")
            for sub in sorted(e.context or [], key=lambda s: len(list(s.absolute_path)))[:3]:
                lines.append(f"    - {'/'.join(str(p) for p in sub.absolute_path) or '(root)'}: {sub.message[:200]}")
        raise SchemaViolation(
            f"message does not validate against {definition} of schema {rev} (protocol {protocol_version}):\n"
            + "\n".join(lines)
            + f"\nmessage: {json.dumps(instance)[:1500]}"
        )


def check_response(message: Any, protocol_version: str, method: str | None = None) -> dict:
    """Validates a JSON-RPC response (result or error) sent for `method`; returns it.

    Results are checked against the method's result definition (and, in 2026-07-28, the method's
    *ResultResponse); errors against JSONRPCErrorResponse plus, in 2026-07-28, the code's specific definition.
    """
    if not isinstance(message, dict):
        raise SchemaViolation(f"a JSON-RPC response must be an object, got {type(message).__name__}: {message!r}")
    if "error" in message:
        version = protocol_version
        if "id" not in message and schema_revision(version) == "2025-06-18":
            version = "2025-11-25"  # see the module docstring: 2025-06-18 wrongly requires an id here
        envelope = "JSONRPCError" if schema_revision(version) == "2025-06-18" else "JSONRPCErrorResponse"
        validate(message, envelope, version)
        if schema_revision(version) == MODERN:
            code = message["error"].get("code")
            if code in ERROR_RESPONSE_DEFS:
                validate(message, ERROR_RESPONSE_DEFS[code], version)
            if code in ERROR_OBJECT_DEFS:
                validate(message["error"], ERROR_OBJECT_DEFS[code], version)
        return message
    if "result" not in message:
        raise SchemaViolation(f"not a JSON-RPC response (no result, no error): {json.dumps(message)[:500]}")
    envelope = "JSONRPCResponse" if schema_revision(protocol_version) == "2025-06-18" else "JSONRPCResultResponse"
    validate(message, envelope, protocol_version)
    if method is not None:
        definition = RESULT_DEFS.get(method)
        if definition is None:
            raise AssertionError(f"no result definition known for method {method!r}")
        if (schema_revision(protocol_version) == MODERN and method in INPUT_REQUIRED_METHODS
                and isinstance(message["result"], dict) and message["result"].get("resultType") == "input_required"):
            definition = "InputRequiredResult"
            validate(message["result"], definition, protocol_version)
            if method == "tools/call":
                validate(message, "CallToolResultResponse", protocol_version)
            return message
        if not has_definition(protocol_version, definition):
            raise SchemaViolation(f"method {method} has no result type {definition} in protocol {protocol_version}")
        validate(message["result"], definition, protocol_version)
        if has_definition(protocol_version, definition + "Response"):
            validate(message, definition + "Response", protocol_version)
    return message


def check_notification(message: Any, protocol_version: str) -> dict:
    """Validates a server notification (progress, log message, list changed, ...); returns it."""
    if not isinstance(message, dict) or "method" not in message or "id" in message:
        raise SchemaViolation(f"not a JSON-RPC notification: {json.dumps(message)[:500]}")
    validate(message, "JSONRPCNotification", protocol_version)
    definition = NOTIFICATION_DEFS.get(message["method"])
    if definition is not None:
        validate(message, definition, protocol_version)
    validate(message, "ServerNotification", protocol_version)
    return message


def check_server_message(message: Any, protocol_version: str, method: str | None = None) -> dict:
    """Validates any message the server sends on a response stream: a notification or the response."""
    if isinstance(message, dict) and "method" in message and "id" not in message:
        return check_notification(message, protocol_version)
    if isinstance(message, dict) and "method" in message:
        definition = SERVER_REQUEST_DEFS.get(message["method"])
        if schema_revision(protocol_version) == MODERN or definition is None or not has_definition(protocol_version, definition):
            raise SchemaViolation(f"the server sent a request on a response stream: {json.dumps(message)[:500]}")
        validate(message, "JSONRPCRequest", protocol_version)
        validate(message, definition, protocol_version)
        return message
    return check_response(message, protocol_version, method)


__all__ = [
    "MODERN",
    "LEGACY",
    "SchemaViolation",
    "schema_revision",
    "has_definition",
    "validate",
    "check_response",
    "check_notification",
    "check_server_message",
]
