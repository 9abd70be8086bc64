module mcp-supervisor/plugins/go

go 1.19
