"""The benchmark peer: the official Python MCP SDK's own server (MCPServer, mcp 2.3.0), stateless, JSON
responses, served by uvicorn with access logs off, with the same `echo` tool as the C reference plugin."""

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

PORT = int(sys.argv[1])
server = MCPServer("python-echo", version="1.0.0", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


app = server.streamable_http_app(streamable_http_path="/mcp", json_response=True, stateless_http=True,
                                 host="127.0.0.1")

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", access_log=False)
