"""The elicitation benchmark's peer: the official Python MCP SDK's own server (MCPServer, mcp 2.3.0) with the same
`confirm` tool as the C reference plugin (Plugins/reference-c/reference.c, section 4b): it asks
"Really do this: <action>?" with the schema {confirm: boolean} and answers "Confirmed: <action>", "Not confirmed:
the user said no" or "Not confirmed: the user chose <action>"; with `twice`, a yes is asked again as
"Are you sure: <action>?".

The question is asked the way the SDK serves both protocol eras with one tool (mcp.server.mcpserver.resolve): a
resolver returns `Elicit(...)`; in 2025-11-25 the SDK sends `elicitation/create` on the call's SSE stream and
waits, in 2026-07-28 it answers `input_required` and resumes on the client's retry. So the server is stateful
(sessions for 2025-11-25) with SSE responses, served by uvicorn with access logs off. The tool and its resolvers are
async (a sync tool would run on a worker thread).
"""

import sys
from typing import Annotated

import uvicorn
from pydantic import BaseModel, Field

from mcp.server.mcpserver import Elicit, ElicitationResult, MCPServer, Resolve

PORT = int(sys.argv[1])
server = MCPServer("python-confirm", version="1.0.0", log_level="WARNING")


class Confirmation(BaseModel):
    confirm: bool = Field(title="Confirm")


async def ask(action: str) -> Elicit[Confirmation]:
    return Elicit(f"Really do this: {action}?", Confirmation)


def confirmed(answer: ElicitationResult[Confirmation]) -> bool:
    return answer.action == "accept" and answer.data.confirm


async def ask_again(action: str, first: Annotated[ElicitationResult[Confirmation], Resolve(ask)],
                    twice: bool = False) -> Elicit[Confirmation] | None:
    return Elicit(f"Are you sure: {action}?", Confirmation) if twice and confirmed(first) else None


def reply(action: str, answer: ElicitationResult[Confirmation]) -> str:
    if answer.action != "accept":
        return f"Not confirmed: the user chose {answer.action}"
    return f"Confirmed: {action}" if answer.data.confirm else "Not confirmed: the user said no"


@server.tool()
async def confirm(action: str, first: Annotated[ElicitationResult[Confirmation], Resolve(ask)],
                  again: Annotated[ElicitationResult[Confirmation], Resolve(ask_again)], twice: bool = False) -> str:
    """Asks the user to confirm an action (elicitation) and reports the answer."""
    # `again` is an answer only when `twice` and the first answer was a yes (ask_again asked nothing otherwise).
    if twice and confirmed(first):
        return reply(action, again)
    return reply(action, first)


app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)
