"""The `calculate` tool: arithmetic and `math` by an AST whitelist, never eval/exec.

An expression is first normalised from the way people (and small models) write
it: "17.5% of 2,340 plus 12 squared" becomes "(17.5/100*2340) + 12**2". Then it
is parsed with `ast.parse(mode="eval")` and walked: numbers, + - * / // % **,
unary signs, parentheses, `math` functions and constants; anything else is a
`ToolError` saying what is allowed. Exponents and results are bounded, so
"9**9**9" is refused rather than hanging the process.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from typing import Any

from mirador.toolspec import ToolError

MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300
MAX_LENGTH = 500

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(math, name) for name in (
        "sqrt", "exp", "log", "log10", "log2", "sin", "cos", "tan", "asin", "acos", "atan",
        "atan2", "sinh", "cosh", "tanh", "floor", "ceil", "fabs", "factorial", "gcd", "hypot",
        "degrees", "radians", "comb", "perm", "trunc")} | {"abs": abs, "round": round,
                                                           "min": min, "max": max}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}

# Words and forms people use, in the order they are rewritten.
_REWRITES: tuple[tuple[str, str], ...] = (
    (r"(?<=\d),(?=\d{3}\b)", ""),  # 2,340 -> 2340
    (r"\bsquare root of\s+([\d.]+)", r"sqrt(\1)"),
    (r"\bsquared\b", "**2"), (r"\bcubed\b", "**3"),
    (r"\bto the power of\b|\braised to\b", "**"),
    (r"([\d.]+)\s*(%|percent)\s*of\s+", r"\1/100*"),
    (r"([\d.]+)\s*(%(?!\s*[\d(.])|percent\b)", r"(\1/100)"),  # not '7 % 2': modulo
    (r"\bmultiplied by\b|\btimes\b|×", "*"), (r"\bdivided by\b|÷", "/"),
    (r"\bplus\b|\band\b", "+"), (r"\bminus\b|−", "-"), (r"\bmod(ulo)?\b", "%"),
    (r"\^", "**"),
)
_LEAD = re.compile(r"^\s*(what('s| is)|calculate|compute|evaluate|how much is)\s+", re.I)


def normalise(expression: str) -> str:
    """`expression` with words, percentages and thousands separators as Python operators."""
    text = _LEAD.sub("", expression.strip()).rstrip("?=. ")
    for pattern, replacement in _REWRITES:
        text = re.sub(pattern, replacement, text, flags=re.IGNORECASE)
    return text


def calculate(expression: str) -> float | int:
    """The value of `expression`; a ToolError saying what is wrong when it cannot be had."""
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"the expression is {len(expression)} characters; at most {MAX_LENGTH}")
    text = normalise(expression)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"cannot read {expression!r} as arithmetic (read as {text!r}); write "
                        "numbers with + - * / // % ** and math functions like sqrt(2)") from None
    try:
        value = _eval(tree.body)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError) as exc:
        raise ToolError(f"{expression!r} cannot be computed: {exc}") from None
    return _tidy(value)


def format_result(expression: str, value: float | int) -> str:
    """What the model sees: the expression and its value."""
    return f"{expression} = {value}"


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call):
        return _call(node)
    raise ToolError(f"{ast.unparse(node)!r} is not allowed; use numbers, + - * / // % **, "
                    f"parentheses and {', '.join(sorted(_FUNCTIONS))}")


def _call(node: ast.Call) -> Any:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in _FUNCTIONS or node.keywords:
        raise ToolError(f"{ast.unparse(node.func)!r} is not a function here; known: "
                        f"{', '.join(sorted(_FUNCTIONS))}")
    args = [_eval(arg) for arg in node.args]
    if name == "factorial" and args and abs(args[0]) > MAX_EXPONENT:
        raise ToolError(f"factorial of more than {MAX_EXPONENT} is too large")
    return _bounded(_FUNCTIONS[name](*args))


def _check_power(base: Any, exponent: Any) -> None:
    if abs(exponent) > MAX_EXPONENT and abs(base) not in (0, 1):
        raise ToolError(f"an exponent of {exponent} is too large (at most {MAX_EXPONENT})")


def _bounded(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > 1000:
        raise ToolError("the result is too large (more than 300 digits)")
    if isinstance(value, float) and math.isfinite(value) and abs(value) > MAX_MAGNITUDE:
        raise ToolError("the result is too large")
    return value


def _tidy(value: Any) -> float | int:
    """Floats that are whole print as integers; others keep 12 significant digits."""
    if isinstance(value, float) and math.isfinite(value):
        if value.is_integer() and abs(value) < 1e15:
            return int(value)
        return float(f"{value:.12g}")
    return value  # type: ignore[no-any-return,unused-ignore]
