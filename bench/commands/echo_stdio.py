"""The benchmark's stdio program: the official Python MCP SDK's MCPServer (mcp 2.3.0) over stdio, with the same
`echo` tool as the C reference plugin and a `pid` tool (which process answered)."""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("python-echo-stdio", version="1.0.0", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


@server.tool()
def pid() -> int:
    """The program's process id."""
    return os.getpid()


if __name__ == "__main__":
    server.run()
