"""Client tools: the `tools` an Ollama or OpenAI client sends, for its model to call.

The client runs its tools, not Mirador: the model is asked to answer or to call one
of them, and a call goes back to the client as `message.tool_calls`; the client
sends the result in a "tool" turn and asks again, and the model answers from it.

A request with client tools is one stage, like a structured answer: the target's
final persona (the last step of a chain, the last configured stage of
`mirador:auto`, the first of `mirador:quick`, or the named model), with its
system prompt and options; earlier stages would only write prose the client
cannot use as a call. It is not remembered (the client holds the conversation).

    tool_choice         llama.cpp (grammar)               Ollama / OpenAI-compatible
    auto (default)      a call of one tool or an answer   tools passed through
    none                tools left out: an answer         tools left out: an answer
    required            a call of one of the tools        400 (cannot be forced there)
    {function: NAME}    a call of NAME                    400 (cannot be forced there)

The embedded model has no native tool calls: it is shown the tools and a grammar
makes it reply with one JSON choice (`mirador.backends.tool_calls`); forced, the
grammar offers calls only. Tool and assistant-call turns of the history reach the
model as the backend takes them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from mirador.backends import ChatRequest, Message, ResponseFormat, ToolCallRequest, tool_calls
from mirador.catalog.manifest import ResolvedPersona
from mirador.errors import BackendError, MiradorError
from mirador.orchestration.hooks import Query
from mirador.orchestration.orchestrator import Orchestrator
from mirador.orchestration.prompts import request_options, stage_options
from mirador.orchestration.stages import ModelStage
from mirador.server import compat, fields, structured
from mirador.server.errors import BadRequestError
from mirador.server.options import Sampling
from mirador.server.schemas import Lenient
from mirador.toolspec import Tool, ToolError
from mirador.toolspec import ToolResult as Returned

MODES = ("auto", "none", "required")
# Backends whose model can be made to call a tool: by grammar, built here.
FORCED_BY_GRAMMAR = frozenset({"llamacpp"})


class FunctionSpec(Lenient):
    """A client tool's function: its name, what it does, its arguments' JSON schema."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object",
                                                                "properties": {}})


class ToolSpec(Lenient):
    """One entry of `tools`, as Ollama and OpenAI send it."""

    type: Literal["function"]
    function: FunctionSpec


_SPECS = TypeAdapter(list[ToolSpec])


class WireFunction(Lenient):
    name: str = Field(min_length=1)
    arguments: dict[str, Any] | str = Field(default_factory=dict)  # OpenAI: a JSON string


class WireCall(Lenient):
    """A call in an assistant turn of the history, as Ollama and OpenAI send it back."""

    id: str | None = None
    type: Literal["function"] = "function"
    function: WireFunction

    def request(self) -> ToolCallRequest:
        """The call as the backends take it; a 400 when its arguments are not an object."""
        try:
            arguments = tool_calls.wire_arguments(self.function.arguments)
        except BackendError:
            raise BadRequestError(f"tool_calls: the arguments of '{self.function.name}' are "
                                  "not a JSON object; send them as the call gave them"
                                  ) from None
        return ToolCallRequest(name=self.function.name, arguments=arguments, id=self.id or "")


@dataclass(frozen=True)
class ToolTurn:
    """What one client-tools request runs: one stage's chat, and whether a call is forced."""

    stage: ModelStage
    persona: ResolvedPersona
    request: ChatRequest
    question: str
    forced: bool = False  # the reply is a grammar-constrained call, parsed whole here


def specs(raw: Sequence[Any]) -> tuple[Tool, ...]:
    """The client's `tools` as Tools Mirador never runs; a 400 naming a bad one."""
    try:
        parsed = _SPECS.validate_python(list(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "tools" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                                  for p in first["loc"])
        raise BadRequestError(f"{where}: {first['msg']}; send each tool as {{\"type\": "
                              '"function", "function": {"name": "...", "description": '
                              '"...", "parameters": {JSON schema}}}') from None
    names = [t.function.name for t in parsed]
    if len(set(names)) < len(names):
        raise BadRequestError(f"tools: two tools share a name ({', '.join(names)}); give "
                              "each its own")
    return tuple(_tool(i, t.function) for i, t in enumerate(parsed))


def _tool(index: int, spec: FunctionSpec) -> Tool:
    from jsonschema import Draft202012Validator, SchemaError

    where = f"tools[{index}].function.parameters"
    try:
        Draft202012Validator.check_schema(spec.parameters)
    except SchemaError as exc:
        raise BadRequestError(f"{where} is not a JSON schema ({exc.message}); send an "
                              'object schema such as {"type": "object", "properties": '
                              "{...}}") from None
    if spec.parameters.get("type", "object") != "object":
        raise BadRequestError(f"{where} must describe an object (\"type\": \"object\"): "
                              "a tool's arguments are named")
    return Tool(name=spec.name, description=spec.description, parameters=spec.parameters,
                call=_client_runs, source="client")


async def _client_runs(arguments: dict[str, Any]) -> Returned:
    raise ToolError("this tool is the client's: the client runs it, not Mirador")


def choice(value: Any, tools: Sequence[Tool]) -> str:
    """OpenAI's `tool_choice` as a mode or a tool's name; a 400 naming a value not known."""
    if value is None:
        return "auto"
    if isinstance(value, str) and value in MODES:
        return value
    name = _named(value)
    if name is None:
        raise BadRequestError(f"tool_choice: {value!r} is not a choice; send \"auto\", "
                              "\"none\", \"required\" or {\"type\": \"function\", "
                              "\"function\": {\"name\": \"...\"}}")
    if name not in {t.name for t in tools}:
        raise BadRequestError(f"tool_choice: '{name}' is not one of the tools sent "
                              f"({', '.join(t.name for t in tools) or 'none'})")
    return name


def _named(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("type") == "function":
        function = value.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def final_persona(orchestrator: Orchestrator, target: compat.Target
                  ) -> tuple[ModelStage, ResolvedPersona]:
    """The stage (and its persona) that answers a client-tools request for `target`."""
    request = compat.build_request(orchestrator, target, Query(text="?"))
    stage = structured.final_stage(orchestrator, request)
    return stage, orchestrator.manifest.resolve(stage.persona)


def can_call(orchestrator: Orchestrator, target: compat.Target) -> bool:
    """Whether `target` takes client tools (its final persona's backend calls tools)."""
    _, persona = final_persona(orchestrator, target)
    try:
        backend = orchestrator.manager.backend(persona.model.backend)
    except MiradorError:  # a backend that cannot be made (a plugin not installed) calls none
        return False
    return backend.capabilities.tools


def capabilities(orchestrator: Orchestrator, target: compat.Target) -> list[str]:
    """What `target` does for a client: /api/show's and /v1/models' capabilities."""
    kinds = compat.capabilities(orchestrator, target)
    if kinds == ["embedding"]:
        return kinds
    if can_call(orchestrator, target):
        kinds = [*kinds, "tools"]
    return [*kinds, "vision"] if fields.sees(orchestrator, target) else kinds


def plan(orchestrator: Orchestrator, target: compat.Target, messages: Sequence[Message],
         sampling: Sampling, tools: Sequence[Tool], mode: str) -> ToolTurn:
    """The one stage a client-tools request runs (see the module), or a 400 saying why not."""
    stage, persona = final_persona(orchestrator, target)
    backend = persona.model.backend
    if not orchestrator.manager.backend(backend).capabilities.tools:
        raise BadRequestError(f"tools: model '{target.name}' cannot call tools (its final "
                              f"persona '{persona.id}' runs on the {backend} backend, which "
                              "has no tool calls); send the request without tools")
    system, turns = _split(messages)
    own = stage.system_prompt or persona.system
    chat = [Message("system", s)] if (s := "\n\n".join(p for p in (own, system) if p)) else []
    options = request_options(persona.options.merged(stage_options(stage)), sampling.options,
                              None)
    tokens = sampling.max_tokens or max(options.max_tokens or 0, structured.MIN_TOKENS)
    request = ChatRequest(model=persona.model, messages=(*chat, *turns), loras=persona.loras,
                          options=options.model_copy(update={"max_tokens": tokens}))
    turn = ToolTurn(stage=stage, persona=persona, request=request, question=_question(turns))
    return _shaped(turn, tools, mode, target.name)


def _split(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns = [m for m in messages if m.role != "system"]
    if not turns or turns[-1].role not in ("user", "tool"):
        raise BadRequestError("the last message must be the user's or a tool's result; send "
                              'messages ending with {"role": "user", "content": "..."}')
    return system, turns


def _question(turns: Sequence[Message]) -> str:
    return next((m.content for m in reversed(turns) if m.role == "user"), "")


def _shaped(turn: ToolTurn, tools: Sequence[Tool], mode: str, name: str) -> ToolTurn:
    """The turn's request as `mode` asks: tools offered, left out, or a call forced."""
    request = turn.request
    if mode == "none":  # earlier calls and results stay in the chat, as plain turns
        plain = tool_calls.prompted(request.messages, (), choosing=False)
        return dataclasses.replace(turn, request=dataclasses.replace(request, messages=plain))
    backend = turn.persona.model.backend
    if mode == "auto":
        _check_grammar(backend, tool_calls.choice_format(tools))
        return dataclasses.replace(turn, request=dataclasses.replace(request, tools=tuple(tools)))
    if backend not in FORCED_BY_GRAMMAR:
        raise BadRequestError(f"tool_choice: '{mode}' cannot be honoured by model '{name}' "
                              f"(its final persona runs on the {backend} backend, which is "
                              "offered tools but cannot be made to call one); send \"auto\" "
                              "or \"none\"")
    chosen = [t for t in tools if mode == "required" or t.name == mode]
    fmt = ResponseFormat(schema={"oneOf": tool_calls.choice_schema(chosen)["oneOf"][:-1]},
                         name="tool_call")
    _check_grammar(backend, fmt)
    messages = tool_calls.prompted(request.messages, chosen, choosing=True)
    options = request.options.model_copy(update={"stop": None})  # a stop would cut the JSON
    forced = dataclasses.replace(request, messages=messages, format=fmt, options=options)
    return dataclasses.replace(turn, request=forced, forced=True)


def _check_grammar(backend: str, fmt: ResponseFormat) -> None:
    """A tool schema llama.cpp cannot turn into a grammar is a 400 now, not a failed stage."""
    if backend not in FORCED_BY_GRAMMAR:
        return
    from mirador.backends.llamacpp import json_grammar

    try:
        json_grammar(fmt)
    except ValueError as exc:
        raise BadRequestError(f"tools: {exc}") from None


def arguments_json(arguments: dict[str, Any]) -> str:
    """A call's arguments as OpenAI sends them: a JSON string."""
    return json.dumps(arguments, ensure_ascii=False)
