"""User-typed log densities over (a, b), parsed safely into torch operations.

The expression is parsed with `ast.parse(mode="eval")` and every node is checked against a
whitelist; the tree is then compiled into nested closures over torch ops. Nothing is passed to
`eval`/`exec`, no attribute is looked up on a user object, no name outside the whitelist resolves.

Allowed: numbers; the variables ``a`` and ``b``; constants ``pi`` and ``e``; ``+ - * / **``, unary
``-``/``+``; comparisons ``< <= > >= == !=`` (chains allowed, giving booleans for ``where``);
functions ``exp log log1p sqrt sin cos tan tanh abs where minimum maximum`` (also spelled
``np.exp`` / ``numpy.exp``).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from lla_studio.core.errors import PosteriorError
from lla_studio.core.posterior.box import Box
from lla_studio.core.posterior.models import DTYPE, ModelSpec, PosteriorModel

__all__ = ["compile_expression", "ExpressionSpec", "ExpressionModel", "FUNCTIONS", "MAX_EXPRESSION_LENGTH"]

MAX_EXPRESSION_LENGTH = 2000
VARIABLES = ("a", "b")
CONSTANTS = {"pi": math.pi, "e": math.e}


def _where(cond: Tensor, x: Tensor, y: Tensor) -> Tensor:
    if cond.dtype != torch.bool:
        cond = cond != 0
    return torch.where(cond, x, y)


FUNCTIONS: dict[str, tuple[int, Callable[..., Tensor]]] = {
    "exp": (1, torch.exp),
    "log": (1, torch.log),
    "log1p": (1, torch.log1p),
    "sqrt": (1, torch.sqrt),
    "sin": (1, torch.sin),
    "cos": (1, torch.cos),
    "tan": (1, torch.tan),
    "tanh": (1, torch.tanh),
    "abs": (1, torch.abs),
    "where": (3, _where),
    "minimum": (2, torch.minimum),
    "maximum": (2, torch.maximum),
}
_NUMPY_ALIASES = ("np", "numpy")

_BINOPS: dict[type, Callable[[Tensor, Tensor], Tensor]] = {
    ast.Add: torch.add,
    ast.Sub: torch.sub,
    ast.Mult: torch.mul,
    ast.Div: torch.div,
    ast.Pow: torch.pow,
}
_CMPOPS: dict[type, Callable[[Tensor, Tensor], Tensor]] = {
    ast.Lt: torch.lt,
    ast.LtE: torch.le,
    ast.Gt: torch.gt,
    ast.GtE: torch.ge,
    ast.Eq: torch.eq,
    ast.NotEq: torch.ne,
}
_OP_SYMBOLS = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.Not: "not",
    ast.Invert: "~",
}

Compiled = Callable[[Tensor, Tensor], Tensor]


def _err(expr: str, node: ast.AST, message: str) -> PosteriorError:
    col = getattr(node, "col_offset", None)
    where = f" at column {col + 1}" if col is not None else ""
    return PosteriorError(f"expression {expr!r}{where}: {message}")


def compile_expression(expr: str) -> Compiled:
    """Parse a log-density expression over ``a`` and ``b`` into a torch function.

    Args:
        expr: The expression, e.g. ``"-(a**2 + b**2)/2"``.

    Returns:
        ``f(a, b)`` mapping two broadcastable float64 tensors to a tensor (not yet broadcast
        when the expression is constant).

    Raises:
        PosteriorError: on a syntax error (with line/column), a forbidden construct or name (named),
            a wrong number of function arguments, or an over-long expression.
    """
    if not isinstance(expr, str):
        raise PosteriorError(f"expression must be a string, got {type(expr).__name__}")
    if len(expr) > MAX_EXPRESSION_LENGTH:
        raise PosteriorError(f"expression is {len(expr)} characters long; the limit is {MAX_EXPRESSION_LENGTH}")
    if not expr.strip():
        raise PosteriorError("expression is empty")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        col = exc.offset if exc.offset is not None else 0
        line = exc.text.rstrip("\n") if exc.text else expr
        caret = " " * max(col - 1, 0) + "^"
        raise PosteriorError(
            f"expression syntax error at line {exc.lineno}, column {col}: {exc.msg}\n  {line}\n  {caret}"
        ) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise PosteriorError(f"expression cannot be parsed: {type(exc).__name__}: {exc}") from None
    try:
        return _compile(expr, tree.body)
    except RecursionError:
        raise PosteriorError("expression is nested too deeply") from None


def _const(value: float) -> Compiled:
    t = torch.tensor(value, dtype=DTYPE)
    return lambda a, b: t


def _number(expr: str, node: ast.Constant) -> float:
    """The float64 of a number literal; one beyond float64 (``1e400`` reads as inf, a 400-digit
    integer does not convert) is refused, naming it."""
    value = node.value
    try:
        x = float(value)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        if isinstance(value, int):
            shown = f"an integer of {len(str(value))} digits"  # at most 2000 digits: str() takes it
        else:
            text = ast.get_source_segment(expr.strip(), node) or repr(value)
            shown = "the number " + (text if len(text) <= 40 else text[:37] + "...")
        raise _err(expr, node, f"{shown} is out of range (a number must fit a float64, at most about 1.8e308)")
    return x


def _compile(expr: str, node: ast.AST) -> Compiled:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _err(expr, node, f"constant {node.value!r} is not allowed (only real numbers)")
        return _const(_number(expr, node))
    if isinstance(node, ast.Name):
        if node.id == "a":
            return lambda a, b: a
        if node.id == "b":
            return lambda a, b: b
        if node.id in CONSTANTS:
            return _const(CONSTANTS[node.id])
        if node.id in FUNCTIONS:
            raise _err(expr, node, f"function '{node.id}' must be called, e.g. {node.id}(a)")
        raise _err(expr, node, f"name '{node.id}' is not allowed; use a, b, pi, e or one of {', '.join(FUNCTIONS)}")
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id in _NUMPY_ALIASES and node.attr in CONSTANTS:
            return _const(CONSTANTS[node.attr])
        raise _err(expr, node, f"attribute access '.{node.attr}' is not allowed")
    if isinstance(node, ast.UnaryOp):
        operand = _compile(expr, node.operand)
        if isinstance(node.op, ast.USub):
            return lambda a, b: -operand(a, b)
        if isinstance(node.op, ast.UAdd):
            return operand
        raise _err(expr, node, f"operator '{_OP_SYMBOLS.get(type(node.op), type(node.op).__name__)}' is not allowed")
    if isinstance(node, ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise _err(
                expr, node, f"operator '{_OP_SYMBOLS.get(type(node.op), type(node.op).__name__)}' is not allowed"
            )
        left, right = _compile(expr, node.left), _compile(expr, node.right)
        return lambda a, b: op(left(a, b), right(a, b))
    if isinstance(node, ast.Compare):
        parts = [_compile(expr, node.left)] + [_compile(expr, c) for c in node.comparators]
        ops = []
        for o in node.ops:
            if type(o) not in _CMPOPS:
                raise _err(expr, node, f"comparison '{type(o).__name__}' is not allowed")
            ops.append(_CMPOPS[type(o)])

        def compare(a: Tensor, b: Tensor) -> Tensor:
            values = [p(a, b) for p in parts]
            result = ops[0](values[0], values[1])
            for i in range(1, len(ops)):
                result = result & ops[i](values[i], values[i + 1])
            return result

        return compare
    if isinstance(node, ast.Call):
        fname = _function_name(expr, node.func)
        if node.keywords:
            raise _err(expr, node, f"keyword arguments are not allowed in '{fname}(...)'")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise _err(expr, node, f"starred arguments are not allowed in '{fname}(...)'")
        arity, fn = FUNCTIONS[fname]
        if len(node.args) != arity:
            raise _err(expr, node, f"function '{fname}' takes {arity} argument(s), got {len(node.args)}")
        args = [_compile(expr, arg) for arg in node.args]
        if fname in ("where", "minimum", "maximum"):

            def call(a: Tensor, b: Tensor) -> Tensor:
                values = [arg(a, b) for arg in args]
                return fn(*torch.broadcast_tensors(*values))

            return call
        (arg,) = args
        return lambda a, b: fn(arg(a, b))
    raise _err(expr, node, f"{type(node).__name__} is not allowed in an expression")


def _function_name(expr: str, func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        name = func.id
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in _NUMPY_ALIASES:
        name = func.attr
    else:
        raise _err(expr, func, "only calls of whitelisted functions are allowed")
    if name not in FUNCTIONS:
        raise _err(expr, func, f"function '{name}' is not allowed; allowed functions: {', '.join(FUNCTIONS)}")
    return name


@dataclass(frozen=True)
class ExpressionSpec(ModelSpec):
    """A user-typed unnormalised log density over ``(a, b)`` on a finite box.

    The box is the support: the density is zero outside it. Points where the expression is NaN
    count as zero density. The expression is parsed (and rejected) here, numbers beyond float64
    included; `build` additionally rejects an expression that is NaN or ``-inf`` on the whole box, or
    ``+inf`` at a point of its check grid (an even grid plus 0, the integers and the midpoint).

    Attributes:
        expression: numpy-style expression, e.g. ``"-(a**2 + b**2)/2"``.
        low: Lower box corner (a, b).
        high: Upper box corner (a, b).
    """

    TYPE: ClassVar[str] = "expression"
    expression: str = "-(a**2 + b**2)/2"
    low: tuple[float, float] = (-4.0, -4.0)
    high: tuple[float, float] = (4.0, 4.0)

    def __post_init__(self) -> None:
        box = Box(self.low, self.high, VARIABLES)
        box.require_finite("expression box")
        object.__setattr__(self, "low", box.low)
        object.__setattr__(self, "high", box.high)
        compile_expression(self.expression)

    def build(self) -> ExpressionModel:
        return ExpressionModel(self)


def _check_axis(low: float, high: float, n: int) -> Tensor:
    """Where the check evaluates an expression along one axis: ``n`` evenly spaced points, the
    midpoint, and the points where singularities sit in expressions people write -- 0 and the
    integers inside ``[low, high]`` (when there are at most ``4 n`` of them). An even grid rarely hits
    them exactly: ``linspace(-4, 4, 41)`` puts 4.4e-16 where 0 is, and ``-log(a**2 + b**2)`` is
    finite there."""
    values = {float(v) for v in torch.linspace(low, high, n, dtype=DTYPE)} | {low, high, (low + high) / 2}
    first, last = math.ceil(low), math.floor(high)
    if last - first < 4 * n:
        values.update(float(k) for k in range(first, last + 1))
    return torch.tensor(sorted(values), dtype=DTYPE)


class ExpressionModel(PosteriorModel):
    """Log density given by a user expression; see `ExpressionSpec`."""

    CHECK_POINTS: ClassVar[int] = 41

    def __init__(self, spec: ExpressionSpec) -> None:
        box = Box(spec.low, spec.high, VARIABLES)
        super().__init__(spec, f"expression: {spec.expression}", VARIABLES, box, box)
        self._fn = compile_expression(spec.expression)
        self._check(spec, box)

    def _check(self, spec: ExpressionSpec, box: Box) -> None:
        n = self.CHECK_POINTS
        a = _check_axis(box.low[0], box.high[0], n)
        b = _check_axis(box.low[1], box.high[1], n)
        pts = torch.stack(torch.meshgrid(a, b, indexing="xy"), -1)
        with torch.no_grad():
            raw = self._raw(pts)
        if torch.isnan(raw).all():
            raise PosteriorError(
                f"expression {spec.expression!r} is NaN everywhere on the box "
                f"a in [{box.low[0]:g}, {box.high[0]:g}], b in [{box.low[1]:g}, {box.high[1]:g}]"
            )
        if not torch.isfinite(raw).any():
            raise PosteriorError(
                f"expression {spec.expression!r} has no finite value on the box "
                f"a in [{box.low[0]:g}, {box.high[0]:g}], b in [{box.low[1]:g}, {box.high[1]:g}] "
                "(the density would be zero everywhere)"
            )
        pos = torch.isposinf(raw)
        if pos.any():
            p = pts[pos][0]
            raise PosteriorError(
                f"expression {spec.expression!r} is +inf at (a, b) = ({p[0].item():g}, {p[1].item():g}); "
                "the density cannot be normalised"
            )

    def _raw(self, theta: Tensor) -> Tensor:
        a, b = theta[..., 0], theta[..., 1]
        value = self._fn(a, b)
        if value.dtype == torch.bool:
            raise PosteriorError(f"expression {self.spec.expression!r} is a comparison, not a number")  # type: ignore[attr-defined]
        value = value.to(DTYPE)
        return value.expand(theta.shape[:-1]) if value.shape != theta.shape[:-1] else value

    def _log_density(self, theta: Tensor) -> Tensor:
        value = self._raw(theta)
        return torch.where(torch.isnan(value), torch.full_like(value, -math.inf), value)
