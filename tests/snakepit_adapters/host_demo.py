"""A Snakepit-style adapter of this project's tests (written against Snakepit 0.13.0's
``snakepit_bridge.base_adapter``): its tool calls a host tool of the pool, as Snakepit adapters
call "Elixir tools"."""

from typing import Any

from snakepit_bridge.base_adapter import BaseAdapter, tool  # type: ignore[import-not-found]


class HostDemoAdapter(BaseAdapter):  # type: ignore[misc]
    """Snakepit's server calls ``execute_tool`` on a fresh instance per request."""

    def execute_tool(self, tool_name: str, arguments: dict[str, Any], context: Any) -> Any:
        return self.call_tool(tool_name, **arguments)

    @tool(description="Call the pool's host tool `host_tool` with x")  # type: ignore[misc]
    def ask_host(self, host_tool: str, x: int) -> Any:
        return self.session_context.call_elixir_tool(host_tool, x=x)
