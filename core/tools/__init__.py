"""Tools the model may call: the registry, the executor of a round's calls, built-ins, fetch_url and MCP."""
