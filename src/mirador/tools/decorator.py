"""`@mirador.tool`: a plain Python function (sync or async) made into a `Tool`.

The name is the function's, the description the decorator's argument (else the
docstring's first line), and the JSON schema of the arguments comes from the
signature and type hints through pydantic, which also validates what a model
sends before the function runs:

    @mirador.tool("Look up a city's population")
    def population(city: str, year: int = 2024) -> int: ...

Sync functions run in a worker thread, so a slow one never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from mirador.errors import ConfigError
from mirador.toolspec import Tool, ToolError, ToolResult


@overload
def tool(description: Callable[..., Any], /) -> Tool: ...
@overload
def tool(description: str | None = None, *, name: str | None = None, timeout: float = 30.0,
         register: bool = True) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(description: str | Callable[..., Any] | None = None, *, name: str | None = None,
         timeout: float = 30.0, register: bool = True) -> Any:
    """Make a function a tool models may call; `@tool` or `@tool("what it does")`.

    The tool is added to Mirador's registry (`mirador tools` lists it) unless
    `register=False`; a persona names it in its `tools:` list to use it.
    """
    if callable(description):
        return tool()(description)

    def wrap(function: Callable[..., Any]) -> Tool:
        made = make_tool(function, description, name=name, timeout=timeout, source="user")
        if register:
            from mirador.tools.registry import registry

            registry.register(made)
        return made

    return wrap


def make_tool(function: Callable[..., Any], description: str | None = None, *,
              name: str | None = None, timeout: float = 30.0, source: str = "user") -> Tool:
    """A `Tool` for `function`, its arguments described and checked by pydantic."""
    model = arguments_model(function)
    text = description or _first_line(function.__doc__) or function.__name__
    return Tool(name=name or function.__name__, description=text,
                parameters=_schema(model), call=_caller(function, model), source=source,
                timeout=timeout)


def arguments_model(function: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of `function`'s parameters (every one needs a type hint)."""
    fields: dict[str, Any] = {}
    hints = _hints(function)
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigError(f"tool '{function.__name__}': *args and **kwargs cannot be "
                              "described to a model; name each parameter")
        if param.name not in hints:
            raise ConfigError(f"tool '{function.__name__}': parameter '{param.name}' has no "
                              "type hint; add one (str, int, float, bool, list[str]...)")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints[param.name], default)
    model: type[BaseModel] = create_model(f"{function.__name__}_arguments",
                                          __config__=ConfigDict(extra="forbid"), **fields)
    return model


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return inspect.get_annotations(function, eval_str=True)
    except NameError as exc:
        raise ConfigError(f"tool '{function.__name__}': a type hint cannot be resolved ({exc}); "
                          "import the type at module level") from None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def _caller(function: Callable[..., Any], model: type[BaseModel]) -> Any:
    async def call(arguments: dict[str, Any]) -> ToolResult:
        try:
            checked = model.model_validate(arguments)
        except ValidationError as exc:
            raise ToolError(f"bad arguments for {function.__name__}: {_problems(exc)}") from None
        kwargs = {key: getattr(checked, key) for key in type(checked).model_fields}
        if inspect.iscoroutinefunction(function):
            value = await function(**kwargs)
        else:
            value = await asyncio.to_thread(function, **kwargs)
        return value if isinstance(value, ToolResult) else ToolResult(_text(value), data=value)

    return call


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                     for e in exc.errors())


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _first_line(doc: str | None) -> str:
    """The docstring's first paragraph, on one line."""
    return " ".join((doc or "").strip().split("\n\n", 1)[0].split())
