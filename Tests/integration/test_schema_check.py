"""The schema checker itself can fail: every kind of check in schema_check.py is shown a bad message and must
reject it (and is shown the good message it was made from, which it must accept, so a rejection is about the
one thing changed). Without these, a checker that accepted everything would let every conformance test pass.
"""

from __future__ import annotations

import copy

import pytest

from schema_check import LEGACY, MODERN, SchemaViolation, check_notification, check_response, check_server_message

GOOD_CALL = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "ok"}]}}
GOOD_LIST = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]}}
GOOD_ERROR = {"jsonrpc": "2.0", "id": 3, "error": {"code": -32601, "message": "method not found: nope"}}
GOOD_PROGRESS = {"jsonrpc": "2.0", "method": "notifications/progress",
                 "params": {"progressToken": "t", "progress": 1, "total": 10}}


def broken(message: dict, path: tuple, value=None, *, delete: bool = False) -> dict:
    """A deep copy of `message` with the value at `path` replaced (or deleted)."""
    out = copy.deepcopy(message)
    target = out
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


VERSIONS = [MODERN, *LEGACY]


def for_version(message, version: str):
    """2026-07-28 results carry resultType, and list results ttlMs and cacheScope (as the host writes them);
    earlier revisions have no such fields."""
    if version == MODERN and isinstance(message, dict) and isinstance(message.get("result"), dict):
        message = copy.deepcopy(message)
        message["result"].setdefault("resultType", "complete")
        if "tools" in message["result"]:
            message["result"].setdefault("ttlMs", 0)
            message["result"].setdefault("cacheScope", "private")
    return message


@pytest.mark.parametrize("version", VERSIONS)
def test_good_messages_pass(version):
    check_response(for_version(GOOD_CALL, version), version, "tools/call")
    check_response(for_version(GOOD_LIST, version), version, "tools/list")
    check_response(GOOD_ERROR, version)
    check_notification(GOOD_PROGRESS, version)
    check_server_message(GOOD_PROGRESS, version)


BAD_RESPONSES = [
    ("wrong jsonrpc version", broken(GOOD_CALL, ("jsonrpc",), "1.0"), "tools/call"),
    ("no jsonrpc member", broken(GOOD_CALL, ("jsonrpc",), delete=True), "tools/call"),
    ("content is not an array", broken(GOOD_CALL, ("result", "content"), "ok"), "tools/call"),
    ("content block without type", broken(GOOD_CALL, ("result", "content", 0, "type"), delete=True), "tools/call"),
    ("text block with a number as text", broken(GOOD_CALL, ("result", "content", 0, "text"), 5), "tools/call"),
    ("isError not a boolean", broken(GOOD_CALL, ("result", "isError"), "yes"), "tools/call"),
    ("tool without a name", broken(GOOD_LIST, ("result", "tools", 0, "name"), delete=True), "tools/list"),
    ("tools not an array", broken(GOOD_LIST, ("result", "tools"), {}), "tools/list"),
    ("inputSchema not an object schema", broken(GOOD_LIST, ("result", "tools", 0, "inputSchema", "type"), "array"),
     "tools/list"),
    ("neither result nor error", broken(GOOD_CALL, ("result",), delete=True), None),
    ("error code not an integer", broken(GOOD_ERROR, ("error", "code"), "-32601"), None),
    ("error without a message", broken(GOOD_ERROR, ("error", "message"), delete=True), None),
    ("not an object", ["jsonrpc", "2.0"], None),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("what", "message", "method"), BAD_RESPONSES, ids=[b[0] for b in BAD_RESPONSES])
def test_bad_responses_are_rejected(version, what, message, method):
    with pytest.raises(SchemaViolation):
        check_response(for_version(message, version), version, method)


BAD_NOTIFICATIONS = [
    ("progress without a token", broken(GOOD_PROGRESS, ("params", "progressToken"), delete=True)),
    ("progress as a string", broken(GOOD_PROGRESS, ("params", "progress"), "one")),
    ("a notification with an id", broken(GOOD_PROGRESS, ("id",), 4)),
    ("log message with an unknown level",
     {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "loud", "data": "x"}}),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("what", "message"), BAD_NOTIFICATIONS, ids=[b[0] for b in BAD_NOTIFICATIONS])
def test_bad_notifications_are_rejected(version, what, message):
    with pytest.raises(SchemaViolation):
        check_notification(message, version)


def test_a_request_on_a_response_stream_is_rejected():
    request = {"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage", "params": {}}
    with pytest.raises(SchemaViolation):
        check_server_message(request, MODERN)


def test_a_result_is_checked_against_its_method():
    # A valid tools/list result is not a tools/call result (content is required there).
    with pytest.raises(SchemaViolation):
        check_response(for_version(GOOD_LIST, MODERN), MODERN, "tools/call")
