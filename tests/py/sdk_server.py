"""An MCP server written with the official Python SDK (FastMCP), an upstream of the virtual API
in tests/tests/virtual_server.rs beside server-everything: over stdio, or over Streamable HTTP
when PORT is set (then, as the SDK does for a request made without naming the call it belongs
to, its sampling request travels on the session's standalone GET stream, not on the call's). It offers what the SDK clients'
`virtual`, `progress` and `sampling` scenarios call, under server-everything's names and with its
answers' wording, so one set of checks covers both servers:

  echo(message)                                  "Echo: <message>"
  get-sum(a, b)                                  "The sum of <a> and <b> is <a+b>."
  trigger-long-running-operation(duration, steps) progress step/steps every duration/steps s
  trigger-sampling-request(prompt, maxTokens)    asks the client to sample, returns its answer
  prompt args-prompt(city, state?)               a user message naming the city
  resource pyserver://readme, template pyserver://greeting/{name}

Usage: python sdk_server.py            (newline-delimited JSON-RPC on stdin/stdout)
       PORT=N python sdk_server.py     (Streamable HTTP at http://127.0.0.1:N/mcp)
"""

from __future__ import annotations

import anyio
from mcp import types
from mcp.server.fastmcp import Context, FastMCP

import os

PORT = os.environ.get("PORT")
mcp = FastMCP(
    "py-sdk-server",
    instructions="A Python SDK server.",
    host="127.0.0.1",
    port=int(PORT or 0),
)


@mcp.tool(name="echo", description="Echoes back the input.")
def echo(message: str) -> str:
    return f"Echo: {message}"


@mcp.tool(name="get-sum", description="Returns the sum of two numbers.")
def get_sum(a: float, b: float) -> str:
    def show(n: float) -> str:
        return str(int(n)) if float(n).is_integer() else str(n)

    return f"The sum of {show(a)} and {show(b)} is {show(a + b)}."


@mcp.tool(
    name="trigger-long-running-operation",
    description="Reports progress every duration/steps seconds, then completes.",
)
async def long_running(ctx: Context, duration: float = 10, steps: int = 5) -> str:
    for step in range(1, steps + 1):
        await anyio.sleep(duration / steps)
        await ctx.report_progress(step, steps)
    return f"Long running operation completed. Duration: {show_number(duration)} seconds, Steps: {steps}."


def show_number(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


@mcp.tool(
    name="trigger-sampling-request",
    description="Asks the client to sample from an LLM and returns what it answered.",
)
async def sampling(ctx: Context, prompt: str, maxTokens: int = 100) -> str:
    result = await ctx.session.create_message(
        messages=[
            types.SamplingMessage(
                role="user",
                content=types.TextContent(
                    type="text", text=f"Resource trigger-sampling-request context: {prompt}"
                ),
            )
        ],
        max_tokens=maxTokens,
        system_prompt="You are a helpful test server.",
    )
    return f"LLM sampling result: \n{result.model_dump_json(indent=2, exclude_none=True)}"


@mcp.prompt(name="args-prompt", description="A prompt with arguments.")
def args_prompt(city: str, state: str = "") -> str:
    where = f"{city}, {state}" if state else city
    return f"What's weather in {where}?"


@mcp.resource("pyserver://readme", name="readme", description="A static document.")
def readme() -> str:
    return "the Python SDK stdio server"


@mcp.resource("pyserver://greeting/{name}", name="greeting", description="A greeting.")
def greeting(name: str) -> str:
    return f"Hello, {name}!"


if __name__ == "__main__":
    mcp.run("streamable-http" if PORT else "stdio")
