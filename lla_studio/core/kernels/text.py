r"""Text form of kernel graphs: :func:`format_kernel` and its inverse :func:`parse_kernel`.

Example::

    scale(matern52(log_lr, momentum) * matern52(log_epochs)) + scale(rbf(log_batch_size; ard=false))

Grammar (whitespace is free between tokens)::

    graph   := expr END
    expr    := term ("+" term)*            two or more terms make ONE sum node (a + b + c: 3 children)
    term    := factor ("*" factor)*        two or more factors make ONE product node; * binds tighter
    factor  := "(" expr ")" | call
    call    := LEAF "(" name ("," name)* [";" attrs] ")"       a base kernel on named features
             | "scale" "(" expr [";" attrs] ")"
             | ("sum" | "product") "(" expr ("," expr)* [";" attrs] ")"
    LEAF    := "rbf" | "matern12" | "matern32" | "matern52" | "rq" | "periodic" | "linear"
    attrs   := attr ("," attr)*
    attr    := "id" "=" name                         node id
             | "ard" "=" ("true" | "false")          leaves only; default true
             | PARAM "=" number                      fix a hyperparameter (raw parameter frozen)
             | PARAM "~" prior                       put a prior on it
    PARAM   := "lengthscale" (rbf, matern*, rq, periodic) | "alpha" (rq) | "period" (periodic)
             | "variance" (linear) | "outputscale" (scale)
    prior   := ("gamma" | "lognormal") "(" number "," number ")"   gamma(concentration, rate),
                                                                      lognormal(loc, scale)
    name    := IDENT | STRING      IDENT: [A-Za-z_][A-Za-z0-9_.]*; STRING: a JSON string literal
    number  := a decimal literal such as 3, -0.5, 1e-06, 2.5E+3

``matern12`` / ``matern32`` / ``matern52`` are Matérn kernels with ν = 0.5 / 1.5 / 2.5.

Printing is canonical and exact, so ``parse_kernel(format_kernel(g)) == g`` for every graph ``g``:

* numbers are printed with ``repr`` (shortest round-tripping form; a trailing ``.0`` is dropped);
* a node's id is printed (``id=...``) only when it differs from the deterministic id ``n<i>`` that
  :class:`~lla_studio.core.kernels.graph.KernelGraph` would assign at its pre-order position ``i``;
* sums and products are printed infix; a sum inside a sum, or a product inside a product, keeps
  its parentheses (``(a + b) + c`` is a sum with a sum child, ``a + b + c`` one sum of three);
* a sum or product with one child, or with a printed id, uses the call form:
  ``sum(matern52(x); id=s)``, ``product(rbf(a), rbf(b); id=p)``;
* feature names and ids that are not IDENTs are printed as JSON strings: ``rbf("opt=adam")``.

Errors are :class:`~lla_studio.core.errors.KernelGraphError` whose message starts with the
position: ``col 17: expected ')', got '+'`` (``line 2, col 5: ...`` for multi-line text).

Parentheses and calls may nest :data:`MAX_NESTING` deep (the parser recurses once per level); the
graph itself may be :data:`~lla_studio.core.kernels.nodes.MAX_DEPTH` nodes deep.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.core.kernels.nodes import (
    LEAF_TYPES,
    KernelNode,
    LeafNode,
    MaternNode,
    ProductNode,
    ScaleNode,
    SumNode,
)
from lla_studio.core.kernels.priors import PRIOR_TYPES

__all__ = ["MAX_NESTING", "format_kernel", "parse_kernel"]

MAX_NESTING = 64
"""Deepest nesting of ``(`` (parentheses and calls) the parser follows."""

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_MATERN_NAMES = {0.5: "matern12", 1.5: "matern32", 2.5: "matern52"}
_LEAF_NAMES: dict[str, tuple[type[LeafNode], dict[str, Any]]] = {
    name: (cls, {"nu": nu} if nu is not None else {})  # type: ignore[misc]
    for cls in LEAF_TYPES
    for name, nu in ([(n, v) for v, n in _MATERN_NAMES.items()] if cls is MaternNode else [(cls.KIND, None)])
}
"""Leaf call names of the text form (``rbf``, ``matern12`` ... ``linear``) -> node class and fixed arguments."""
_CALLS = (*_LEAF_NAMES, "scale", "sum", "product")


# -- printing --------------------------------------------------------------------------------
def _name(s: str) -> str:
    return s if _IDENT.fullmatch(s) else json.dumps(s)


def _num(x: float) -> str:
    r = repr(float(x))
    return r[:-2] if r.endswith(".0") else r


def _attrs(node: KernelNode, auto_id: str) -> list[str]:
    out = []
    if isinstance(node, LeafNode) and not node.ard:
        out.append("ard=false")
    for p in node.PARAMS:
        prior = getattr(node, f"{p}_prior")
        if prior is not None:
            a, b = (getattr(prior, f) for f in prior.PARAMS)
            out.append(f"{p}~{prior.TAG}({_num(a)}, {_num(b)})")
        value = getattr(node, p)
        if value is not None:
            out.append(f"{p}={_num(value)}")
    if node.id != auto_id:
        out.append(f"id={_name(node.id)}")  # type: ignore[arg-type]
    return out


def _call(head: str, args: list[str], attrs: list[str]) -> str:
    inner = ", ".join(args)
    if attrs:
        inner += "; " + ", ".join(attrs)
    return f"{head}({inner})"


def _fmt(node: KernelNode, ctx: str, counter: list[int]) -> str:
    """Print ``node``; ``ctx`` is ``"top"``, ``"sum"`` (operand of +) or ``"product"`` (of *)."""
    auto_id = f"n{counter[0]}"
    counter[0] += 1
    if isinstance(node, LeafNode):
        head = _MATERN_NAMES[node.nu] if isinstance(node, MaternNode) else node.KIND
        return _call(head, [_name(f) for f in node.features], _attrs(node, auto_id))
    if isinstance(node, ScaleNode):
        attrs = _attrs(node, auto_id)
        return _call("scale", [_fmt(node.child, "top", counter)], attrs)
    assert isinstance(node, (SumNode, ProductNode))
    attrs = _attrs(node, auto_id)
    if attrs or len(node.children) == 1:
        return _call(node.KIND, [_fmt(c, "top", counter) for c in node.children], attrs)
    op = " + " if isinstance(node, SumNode) else " * "
    text = op.join(_fmt(c, node.KIND, counter) for c in node.children)
    needs_parens = ctx == "product" or (ctx == "sum" and isinstance(node, SumNode))
    return f"({text})" if needs_parens else text


def format_kernel(graph: KernelGraph | KernelNode) -> str:
    """The canonical text form of a kernel graph (see the module docstring for the grammar).

    Args:
        graph: A graph, or a root node (wrapped in a :class:`KernelGraph`, which assigns ids).

    Returns:
        Text that :func:`parse_kernel` turns back into an equal graph.
    """
    if not isinstance(graph, KernelGraph):
        graph = KernelGraph(graph)
    return _fmt(graph.root, "top", [0])


# -- parsing ---------------------------------------------------------------------------------
class _Parser:
    """Recursive-descent parser over the grammar in the module docstring."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.id_pos: dict[str, int] = {}
        self.nesting = 0  # open "(" being parsed

    # low level
    def where(self, pos: int) -> str:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return f"line {line}, col {col}" if "\n" in self.text else f"col {col}"

    def error(self, msg: str, pos: int | None = None, node_id: str | None = None) -> KernelGraphError:
        return KernelGraphError(f"{self.where(self.pos if pos is None else pos)}: {msg}", node_id=node_id)

    def skip(self) -> int:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.pos

    def found(self) -> str:
        self.skip()
        if self.pos >= len(self.text):
            return "end of text"
        m = _IDENT.match(self.text, self.pos) or _NUMBER.match(self.text, self.pos)
        return repr(m.group()) if m else repr(self.text[self.pos])

    def accept(self, ch: str) -> bool:
        self.skip()
        if self.text.startswith(ch, self.pos):
            self.pos += len(ch)
            return True
        return False

    def expect(self, ch: str, what: str | None = None) -> None:
        if not self.accept(ch):
            raise self.error(f"expected {what or repr(ch)}, got {self.found()}")

    def ident(self, what: str) -> str:
        self.skip()
        m = _IDENT.match(self.text, self.pos)
        if not m:
            raise self.error(f"expected {what}, got {self.found()}")
        self.pos = m.end()
        return m.group()

    def name(self, what: str) -> str:
        self.skip()
        if self.text.startswith('"', self.pos):
            start = self.pos
            try:
                value, end = json.JSONDecoder().raw_decode(self.text, self.pos)
            except json.JSONDecodeError as err:
                raise self.error(f"bad string literal: {err.msg}", start) from None
            self.pos = end
            return value
        return self.ident(what)

    def number(self) -> float:
        self.skip()
        m = _NUMBER.match(self.text, self.pos)
        if not m or _IDENT.match(self.text, m.end()):
            raise self.error(f"expected a number, got {self.found()}")
        self.pos = m.end()
        return float(m.group())

    # grammar
    def parse(self) -> KernelGraph:
        root = self.expr()
        if self.skip() < len(self.text):
            raise self.error(f"expected '+', '*' or end of text, got {self.found()}")
        try:
            return KernelGraph(root)
        except KernelGraphError as err:
            raise self.error(str(err), 0, err.node_id) from None

    def expr(self) -> KernelNode:
        start = self.skip()
        terms = [self.term()]
        while self.accept("+"):
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else self.build(SumNode, {"children": tuple(terms)}, start)

    def term(self) -> KernelNode:
        start = self.skip()
        factors = [self.factor()]
        while self.accept("*"):
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else self.build(ProductNode, {"children": tuple(factors)}, start)

    def open(self, start: int) -> None:
        """Enter one more level of ``(``; refuse text nested deeper than :data:`MAX_NESTING`."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise self.error(f"kernel nested more than {MAX_NESTING} levels deep", start)

    def factor(self) -> KernelNode:
        start = self.skip()
        if self.accept("("):
            self.open(start)
            node = self.expr()
            self.expect(")")
            self.nesting -= 1
            return node
        if self.pos >= len(self.text) or not _IDENT.match(self.text, self.pos):
            raise self.error(f"expected a kernel or '(', got {self.found()}")
        head = self.ident("a kernel")
        if head not in _CALLS:
            raise self.error(f"unknown kernel {head!r}; expected one of {', '.join(_CALLS)}", start)
        self.expect("(", f"'(' after {head!r}")
        self.open(start)
        kwargs: dict[str, Any]
        if head in _LEAF_NAMES:
            cls, kwargs = _LEAF_NAMES[head]
            kwargs = dict(kwargs)
            feats = [self.name("a feature name")]
            while self.accept(","):
                feats.append(self.name("a feature name"))
            kwargs["features"] = tuple(feats)
        elif head == "scale":
            cls, kwargs = ScaleNode, {"child": self.expr()}
        else:
            cls = SumNode if head == "sum" else ProductNode
            kids = [self.expr()]
            while self.accept(","):
                kids.append(self.expr())
            kwargs = {"children": tuple(kids)}
        if self.accept(";"):
            self.attrs(cls, head, kwargs)
        self.expect(")", "',', ';' or ')'" if head in _LEAF_NAMES else "';' or ')'")
        self.nesting -= 1
        return self.build(cls, kwargs, start)

    def attrs(self, cls: type[KernelNode], head: str, kwargs: dict[str, Any]) -> None:
        seen: set[str] = set()
        priors: list[tuple[str, str, float, float, int]] = []
        while True:
            start = self.skip()
            key = self.ident("an attribute name")
            op_pos = self.skip()
            if self.accept("~"):
                if key not in cls.PARAMS:
                    raise self.error(f"{head} has no hyperparameter {key!r} to put a prior on", start)
                self.once(f"{key}~", key, seen, start)
                tag_pos = self.skip()
                tag = self.ident("a prior (gamma or lognormal)")
                if tag not in PRIOR_TYPES:
                    raise self.error(f"unknown prior {tag!r}; expected one of {', '.join(PRIOR_TYPES)}", tag_pos)
                self.expect("(", f"'(' after {tag!r}")
                a = self.number()
                self.expect(",")
                b = self.number()
                self.expect(")")
                priors.append((key, tag, a, b, tag_pos))
            elif self.accept("="):
                self.once(key, key, seen, start)
                if key == "id":
                    id_pos = self.skip()
                    node_id = self.name("a node id")
                    if node_id in self.id_pos:
                        raise self.error(
                            f"duplicate node id {node_id!r} (first at {self.where(self.id_pos[node_id])})",
                            id_pos,
                            node_id,
                        )
                    self.id_pos[node_id] = id_pos
                    kwargs["id"] = node_id
                elif key == "ard" and issubclass(cls, LeafNode):
                    val_pos = self.skip()
                    word = self.ident("true or false")
                    if word not in ("true", "false"):
                        raise self.error(f"expected true or false, got {word!r}", val_pos)
                    kwargs["ard"] = word == "true"
                elif key in cls.PARAMS:
                    kwargs[key] = self.number()
                else:
                    raise self.error(f"{head} has no attribute {key!r}", start)
            else:
                raise self.error(f"expected '=' or '~' after {key!r}, got {self.found()}", op_pos)
            if not self.accept(","):
                break
        node_id = kwargs.get("id")
        for key, tag, a, b, pos in priors:
            try:
                kwargs[f"{key}_prior"] = PRIOR_TYPES[tag](a, b)
            except KernelGraphError as err:
                suffix = f" (node {node_id!r})" if node_id else ""
                raise self.error(f"{key} prior: {err}{suffix}", pos, node_id) from None

    def once(self, slot: str, key: str, seen: set[str], pos: int) -> None:
        if slot in seen:
            raise self.error(f"attribute {key!r} given twice", pos)
        seen.add(slot)

    def build(self, cls: type[KernelNode], kwargs: dict[str, Any], pos: int) -> KernelNode:
        try:
            return cls(**kwargs)
        except KernelGraphError as err:
            raise self.error(str(err), pos, err.node_id) from None


def parse_kernel(text: str) -> KernelGraph:
    """Parse the text form (grammar in the module docstring) into a :class:`KernelGraph`.

    Args:
        text: E.g. ``"scale(matern52(log_lr, momentum)) + rbf(log_batch_size; ard=false)"``.

    Returns:
        The graph; nodes without ``id=`` get the deterministic ids ``n<i>``.

    Raises:
        KernelGraphError: Syntax or validation error; the message starts with ``col N:``.
    """
    if not isinstance(text, str):
        raise KernelGraphError(f"kernel text must be a string, got {type(text).__name__}")
    return _Parser(text).parse()
