"""Kernel graph nodes: frozen dataclasses, validated in ``__post_init__``, JSON-serializable.

Leaves are base kernels on a list of *named features* (names produced by the feature-transform
chain, e.g. ``log_lr``); inner nodes combine them:

============  =====================  ==================================================
node          JSON tag               hyperparameters (each: ``<p>_prior`` and fixed ``<p>``)
============  =====================  ==================================================
RBFNode       ``"rbf"``              lengthscale
MaternNode    ``"matern"`` (+ nu)    lengthscale
RQNode        ``"rq"``               lengthscale, alpha
PeriodicNode  ``"periodic"``         lengthscale, period
LinearNode    ``"linear"``           variance
ScaleNode     ``"scale"``            outputscale (one ``child``)
SumNode       ``"sum"``              -- (``children``, at least one)
ProductNode   ``"product"``          -- (``children``, at least one)
============  =====================  ==================================================

A hyperparameter ``p`` can carry a prior (``p_prior``: :class:`Gamma` or :class:`LogNormal`) and/or a
fixed value (``p``: a float > 0; the compiled raw parameter then has ``requires_grad=False``). A fixed
value applies to every ARD dimension. Leaves have ``ard`` (one lengthscale / variance per feature,
default ``True``). Every node has an ``id``; ``None`` means "assign one": :class:`KernelGraph` gives
such nodes deterministic ids ``n<k>``.

JSON form, e.g.::

    {"kernel": "sum", "id": "n0", "children": [
        {"kernel": "matern", "id": "n1", "nu": 2.5, "features": ["x0", "x1"], "ard": true,
         "lengthscale_prior": {"prior": "gamma", "concentration": 3.0, "rate": 6.0}},
        {"kernel": "scale", "id": "n2", "outputscale": 1.5,
         "child": {"kernel": "rbf", "id": "n3", "features": ["x2"], "ard": true}}]}

Errors are :class:`~lla_studio.core.errors.KernelGraphError` with ``node_id`` set when the node has
an id; messages from :func:`node_from_dict` start with the JSON path
(``kernel.children[1].nu: must be one of 0.5, 1.5, 2.5, got 2.0 (node 'k1')``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import KW_ONLY, dataclass, fields, replace
from typing import Any, ClassVar

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels.priors import Gamma, LogNormal, PriorSpec, prior_from_dict, prior_to_dict
from lla_studio.core.schema import brief

__all__ = [
    "MAX_DEPTH",
    "NU_VALUES",
    "KernelNode",
    "LEAF_TYPES",
    "LeafNode",
    "NODE_TYPES",
    "LinearNode",
    "MaternNode",
    "PeriodicNode",
    "ProductNode",
    "RBFNode",
    "RQNode",
    "ScaleNode",
    "SumNode",
    "node_from_dict",
]

NU_VALUES: tuple[float, ...] = (0.5, 1.5, 2.5)
"""Smoothness values a Matérn leaf accepts."""

MAX_DEPTH = 32
"""Deepest kernel graph (the root is level 1). Hand-written kernels stay below 10 levels; the limit
keeps every recursive walk (ids, text form, compile, JSON) far from Python's recursion limit and fits
a graph inside a session document's nesting limit."""

# JSON path of the node being built by ``node_from_dict``; ``None`` for plain Python construction.
_PATH: ContextVar[str | None] = ContextVar("lla_studio_kernel_path", default=None)


@contextmanager
def _at(path: str) -> Iterator[None]:
    token = _PATH.set(path)
    try:
        yield
    finally:
        _PATH.reset(token)


class KernelNode:
    """Base of all kernel graph nodes (frozen dataclasses); not instantiated itself."""

    KIND: ClassVar[str]
    PARAMS: ClassVar[tuple[str, ...]] = ()
    id: str | None

    # -- structure ---------------------------------------------------------------------------
    def child_nodes(self) -> tuple[KernelNode, ...]:
        """The direct children, in order (empty for a leaf)."""
        return ()

    def with_child_nodes(self, children: Sequence[KernelNode]) -> KernelNode:
        """A copy with other direct children (same kind and attributes)."""
        if children:
            raise KernelGraphError(f"{self._label()}: a {self.KIND} leaf has no children", node_id=self.id)
        return self

    def with_id(self, node_id: str | None) -> KernelNode:
        """A copy with another id (``None``: let the graph assign one)."""
        return self if node_id == self.id else replace(self, id=node_id)  # type: ignore[type-var]

    # -- validation --------------------------------------------------------------------------
    def _label(self) -> str:
        nid = self.id if isinstance(self.id, str) else None
        return f"{self.KIND} node {nid!r}" if nid else f"{self.KIND} node"

    def _fail(self, field: str, reason: str) -> None:
        nid = self.id if isinstance(self.id, str) and self.id else None
        path = _PATH.get()
        if path is not None:
            msg = f"{path}.{field}: {reason}" + (f" (node {nid!r})" if nid else "")
        else:
            msg = f"{self._label()}: {field} {reason}"
        raise KernelGraphError(msg, node_id=nid)

    def __post_init__(self) -> None:
        nid = self.id
        if nid is not None and (not isinstance(nid, str) or not nid):
            object.__setattr__(self, "id", None)
            self._fail("id", f"must be a non-empty string, got {brief(nid)}")
        self._check()
        for p in self.PARAMS:
            prior = getattr(self, f"{p}_prior")
            if prior is not None and not isinstance(prior, (Gamma, LogNormal)):
                self._fail(f"{p}_prior", f"must be a Gamma or LogNormal prior spec, got {brief(prior)}")
            value = getattr(self, p)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    self._fail(p, f"must be a number, got {brief(value)}")
                try:
                    x = float(value)
                except OverflowError:  # an int beyond float64
                    x = math.inf
                if not (math.isfinite(x) and x > 0):
                    self._fail(p, f"(fixed value) must be a finite number > 0, got {brief(value)}")
                object.__setattr__(self, p, x)

    def _check(self) -> None:
        """Kind-specific checks and normalisations."""

    # -- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON) form with the stable type tag ``"kernel"``."""
        out: dict[str, Any] = {"kernel": self.KIND}
        if self.id is not None:
            out["id"] = self.id
        out.update(self._body_dict())
        for p in self.PARAMS:
            prior = getattr(self, f"{p}_prior")
            if prior is not None:
                out[f"{p}_prior"] = prior_to_dict(prior)
            if getattr(self, p) is not None:
                out[p] = getattr(self, p)
        return out

    def _body_dict(self) -> dict[str, Any]:
        return {}


class LeafNode(KernelNode):
    """Base of the base kernels: ``features`` and ``ard``."""

    features: tuple[str, ...]
    ard: bool

    def _check(self) -> None:
        feats = self.features
        if isinstance(feats, (str, bytes)) or not isinstance(feats, (Sequence, frozenset, set)):
            self._fail("features", f"must be a list of feature names, got {brief(feats)}")
        feats = tuple(feats)
        object.__setattr__(self, "features", feats)
        if not feats:
            self._fail("features", "must name at least one feature (a leaf with no features)")
        seen: set[str] = set()
        for i, f in enumerate(feats):
            if not isinstance(f, str) or not f:
                self._fail(f"features[{i}]", f"must be a non-empty string, got {brief(f)}")
            if f in seen:
                self._fail("features", f"names feature {brief(f)} twice")
            seen.add(f)
        if not isinstance(self.ard, bool):
            self._fail("ard", f"must be true or false, got {brief(self.ard)}")

    def _body_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "ard": self.ard}


@dataclass(frozen=True)
class RBFNode(LeafNode):
    """Squared-exponential kernel ``exp(-r^2 / 2)`` on scaled distances ``r``."""

    features: tuple[str, ...]
    _: KW_ONLY
    ard: bool = True
    lengthscale_prior: PriorSpec | None = None
    lengthscale: float | None = None
    id: str | None = None

    KIND: ClassVar[str] = "rbf"
    PARAMS: ClassVar[tuple[str, ...]] = ("lengthscale",)


@dataclass(frozen=True)
class MaternNode(LeafNode):
    """Matérn kernel with smoothness ``nu`` in {0.5, 1.5, 2.5}."""

    features: tuple[str, ...]
    _: KW_ONLY
    nu: float = 2.5
    ard: bool = True
    lengthscale_prior: PriorSpec | None = None
    lengthscale: float | None = None
    id: str | None = None

    KIND: ClassVar[str] = "matern"
    PARAMS: ClassVar[tuple[str, ...]] = ("lengthscale",)

    def _check(self) -> None:
        nu = self.nu
        if isinstance(nu, bool) or not isinstance(nu, numbers.Real) or nu not in NU_VALUES:
            self._fail("nu", f"must be one of 0.5, 1.5, 2.5, got {brief(nu)}")
        object.__setattr__(self, "nu", float(nu))
        super()._check()

    def _body_dict(self) -> dict[str, Any]:
        return {"nu": self.nu, **super()._body_dict()}


@dataclass(frozen=True)
class RQNode(LeafNode):
    """Rational quadratic kernel ``(1 + r^2 / (2 alpha))^(-alpha)``."""

    features: tuple[str, ...]
    _: KW_ONLY
    ard: bool = True
    lengthscale_prior: PriorSpec | None = None
    lengthscale: float | None = None
    alpha_prior: PriorSpec | None = None
    alpha: float | None = None
    id: str | None = None

    KIND: ClassVar[str] = "rq"
    PARAMS: ClassVar[tuple[str, ...]] = ("lengthscale", "alpha")


@dataclass(frozen=True)
class PeriodicNode(LeafNode):
    """Periodic kernel (gpytorch ``PeriodicKernel``) with lengthscale and period length."""

    features: tuple[str, ...]
    _: KW_ONLY
    ard: bool = True
    lengthscale_prior: PriorSpec | None = None
    lengthscale: float | None = None
    period_prior: PriorSpec | None = None
    period: float | None = None
    id: str | None = None

    KIND: ClassVar[str] = "periodic"
    PARAMS: ClassVar[tuple[str, ...]] = ("lengthscale", "period")



@dataclass(frozen=True)
class LinearNode(LeafNode):
    """Linear kernel ``x^T diag(v) x'`` (one variance per feature with ``ard``)."""

    features: tuple[str, ...]
    _: KW_ONLY
    ard: bool = True
    variance_prior: PriorSpec | None = None
    variance: float | None = None
    id: str | None = None

    KIND: ClassVar[str] = "linear"
    PARAMS: ClassVar[tuple[str, ...]] = ("variance",)


class _NaryNode(KernelNode):
    children: tuple[KernelNode, ...]

    def child_nodes(self) -> tuple[KernelNode, ...]:
        return self.children

    def with_child_nodes(self, children: Sequence[KernelNode]) -> KernelNode:
        return replace(self, children=tuple(children))  # type: ignore[type-var]

    def _check(self) -> None:
        kids = self.children
        if isinstance(kids, KernelNode) or not isinstance(kids, Sequence):
            self._fail("children", f"must be a list of kernel nodes, got {brief(kids)}")
        kids = tuple(kids)
        object.__setattr__(self, "children", kids)
        if not kids:
            self._fail("children", f"must hold at least one kernel (an empty {self.KIND})")
        for i, kid in enumerate(kids):
            if not isinstance(kid, KernelNode):
                self._fail(f"children[{i}]", f"must be a kernel node, got {brief(kid)}")

    def _body_dict(self) -> dict[str, Any]:
        return {"children": [c.to_dict() for c in self.children]}


@dataclass(frozen=True)
class SumNode(_NaryNode):
    """Sum of its children's kernels (gpytorch ``AdditiveKernel``)."""

    children: tuple[KernelNode, ...]
    _: KW_ONLY
    id: str | None = None

    KIND: ClassVar[str] = "sum"


@dataclass(frozen=True)
class ProductNode(_NaryNode):
    """Product of its children's kernels (gpytorch ``ProductKernel``)."""

    children: tuple[KernelNode, ...]
    _: KW_ONLY
    id: str | None = None

    KIND: ClassVar[str] = "product"


@dataclass(frozen=True)
class ScaleNode(KernelNode):
    """Output scale times its child's kernel (gpytorch ``ScaleKernel``)."""

    child: KernelNode
    _: KW_ONLY
    outputscale_prior: PriorSpec | None = None
    outputscale: float | None = None
    id: str | None = None

    KIND: ClassVar[str] = "scale"
    PARAMS: ClassVar[tuple[str, ...]] = ("outputscale",)

    def child_nodes(self) -> tuple[KernelNode, ...]:
        return (self.child,)

    def with_child_nodes(self, children: Sequence[KernelNode]) -> KernelNode:
        if len(children) != 1:
            raise KernelGraphError(
                f"{self._label()}: a scale node holds exactly one child, got {len(children)}", node_id=self.id
            )
        return replace(self, child=children[0])

    def _check(self) -> None:
        if not isinstance(self.child, KernelNode):
            self._fail("child", f"must be a kernel node, got {brief(self.child)}")

    def _body_dict(self) -> dict[str, Any]:
        return {"child": self.child.to_dict()}


NODE_TYPES: dict[str, type[KernelNode]] = {
    cls.KIND: cls
    for cls in (RBFNode, MaternNode, RQNode, PeriodicNode, LinearNode, ScaleNode, SumNode, ProductNode)
}
"""Node class for each JSON type tag."""
LEAF_TYPES: tuple[type[LeafNode], ...] = (RBFNode, MaternNode, RQNode, PeriodicNode, LinearNode)
"""The base-kernel (leaf) classes, e.g. for an editor's palette."""


def _field_names(cls: type[KernelNode]) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls) if f.name != "_")  # type: ignore[arg-type]


def node_from_dict(d: Any, path: str = "kernel") -> KernelNode:
    """Read one node (and its subtree) from its JSON form.

    Args:
        d: A dict like ``{"kernel": "matern", "nu": 2.5, "features": ["x0"], "id": "k1"}``.
        path: JSON path of ``d``; every error message starts with it (or a path below it).

    Returns:
        The node; ids missing from the dict stay ``None`` (a :class:`KernelGraph` assigns them).

    Raises:
        KernelGraphError: Unknown tag or key, wrong types, invalid values, a subtree deeper than
            :data:`MAX_DEPTH`. ``node_id`` is set when the offending node has an id.
    """
    return _node_from_dict(d, path, 1)


def _node_from_dict(d: Any, path: str, level: int) -> KernelNode:
    if level > MAX_DEPTH:
        raise KernelGraphError(f"{path}: kernel graph nested more than {MAX_DEPTH} levels deep")
    if not isinstance(d, Mapping):
        raise KernelGraphError(f"{path}: expected a kernel object, got {brief(d)}")
    tag = d.get("kernel")
    cls = NODE_TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        if "kernel" not in d:
            raise KernelGraphError(f"{path}.kernel: missing type tag")
        raise KernelGraphError(f"{path}.kernel: unknown kernel {brief(tag)}; expected one of {', '.join(NODE_TYPES)}")
    nid = d.get("id")
    nid = nid if isinstance(nid, str) and nid else None
    allowed = _field_names(cls)
    for key in d:
        if key != "kernel" and key not in allowed:
            raise KernelGraphError(f"{path}.{key}: unknown field of a {tag} kernel", node_id=nid)

    kwargs: dict[str, Any] = {}
    # Children first: their errors carry their own paths and ids.
    if issubclass(cls, _NaryNode):
        kids = d.get("children")
        if not isinstance(kids, (list, tuple)):
            what = "missing required field" if kids is None else f"must be a list, got {brief(kids)}"
            raise KernelGraphError(f"{path}.children: {what}", node_id=nid)
        kwargs["children"] = tuple(_node_from_dict(c, f"{path}.children[{i}]", level + 1) for i, c in enumerate(kids))
    elif cls is ScaleNode:
        if "child" not in d:
            raise KernelGraphError(f"{path}.child: missing required field", node_id=nid)
        kwargs["child"] = _node_from_dict(d["child"], f"{path}.child", level + 1)
    else:
        if "features" not in d:
            raise KernelGraphError(f"{path}.features: missing required field", node_id=nid)
        feats = d["features"]
        if not isinstance(feats, (list, tuple)):
            raise KernelGraphError(f"{path}.features: must be a list of feature names, got {brief(feats)}", node_id=nid)
        kwargs["features"] = tuple(feats)
        if "ard" in d:
            kwargs["ard"] = d["ard"]
        if "nu" in d:
            kwargs["nu"] = d["nu"]
    for p in cls.PARAMS:
        key = f"{p}_prior"
        if d.get(key) is not None:
            try:
                kwargs[key] = prior_from_dict(d[key], f"{path}.{key}")
            except KernelGraphError as err:
                raise KernelGraphError(str(err) + (f" (node {nid!r})" if nid else ""), node_id=nid) from None
        if d.get(p) is not None:
            kwargs[p] = d[p]
    if "id" in d:
        kwargs["id"] = d["id"]
    with _at(path):
        return cls(**kwargs)

