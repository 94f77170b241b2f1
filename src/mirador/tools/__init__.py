"""Tools models call: the registry, built-ins, the sandbox and MCP (see mirador.toolspec)."""
