"""The benchmark peer: the official Python MCP SDK's own server (MCPServer), stateless, JSON responses,
serving the same `echo` tool as the C reference plugin."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("python-echo")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]), stateless_http=True, json_response=True)
