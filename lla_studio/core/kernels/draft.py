"""The kernel editor's draft document: nodes and wires that may not form a valid kernel yet.

The canvas holds partial graphs (an operator with no inputs yet, unconnected nodes, a leaf without
features or over a feature that no longer exists), so the editor does not edit a
:class:`~lla_studio.core.kernels.KernelGraph` directly: it edits an immutable :class:`EditorDoc`
of :class:`EditorNode` s and ``parent -> children`` edges. :func:`analyze` turns a document into a
kernel graph when it is complete and valid, or into per-node errors and a status line when it is
not. The connect rules (:meth:`EditorDoc.connect`) and the attribute rules (:func:`edit_node`) live
here too, beside the document they guard (as Orange's canvas keeps its scheme apart from the
widgets that draw it). No Qt, no torch: the GUI's kernel editor draws these documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels.graph import KernelGraph
from lla_studio.core.kernels.nodes import NODE_TYPES, KernelNode, LeafNode, MaternNode, ProductNode, ScaleNode, SumNode
from lla_studio.core.kernels.priors import Gamma, LogNormal

__all__ = [
    "DESCRIPTIONS",
    "connect",
    "LEAF_KINDS",
    "OPERATOR_KINDS",
    "Analysis",
    "EditorDoc",
    "EditorNode",
    "analyze",
    "core_kind",
    "doc_from_graph",
    "edit_node",
]

LEAF_KINDS: tuple[str, ...] = ("rbf", "matern12", "matern32", "matern52", "rq", "periodic", "linear")
"""Palette names of the base kernels (the text form's leaf names)."""
OPERATOR_KINDS: tuple[str, ...] = ("sum", "product", "scale")
"""Palette names of the operators."""

_MATERN = {"matern12": 0.5, "matern32": 1.5, "matern52": 2.5}
_MATERN_NAME = {v: k for k, v in _MATERN.items()}
DESCRIPTIONS = {
    "rbf": "squared exponential",
    "matern12": "Matérn ν=1/2 (rough)",
    "matern32": "Matérn ν=3/2",
    "matern52": "Matérn ν=5/2",
    "rq": "rational quadratic",
    "periodic": "periodic",
    "linear": "linear (dot product)",
    "sum": "k₁ + k₂ + …",
    "product": "k₁ · k₂ · …",
    "scale": "σ² · k",
}


def core_kind(kind: str) -> tuple[str, float | None]:
    """Palette/text kind -> (node KIND, nu)."""
    if kind in _MATERN:
        return "matern", _MATERN[kind]
    if kind in NODE_TYPES:
        return kind, None
    raise KernelGraphError(f"unknown kernel kind {kind!r}; expected one of {', '.join(LEAF_KINDS + OPERATOR_KINDS)}")



@dataclass(frozen=True)
class EditorNode:
    """One node on the canvas (possibly incomplete).

    Attributes:
        key: Editor key (``"k1"``, ...), stable across edits; not the graph's node id.
        kind: Node KIND (``rbf``, ``matern``, ``rq``, ``periodic``, ``linear``, ``sum``,
            ``product``, ``scale``).
        nu: Matérn smoothness (Matérn leaves only).
        features: Feature names of a leaf (may be empty or name unknown features while editing).
        ard: One lengthscale per feature (leaves).
        priors: ``(param, prior spec)`` pairs.
        fixed: ``(param, value)`` pairs.
        node_id: Explicit graph id (``None``: the graph's automatic ``n<i>``).
        pos: Top-left corner on the canvas.
    """

    key: str
    kind: str
    nu: float = 2.5
    features: tuple[str, ...] = ()
    ard: bool = True
    priors: tuple[tuple[str, Gamma | LogNormal], ...] = ()
    fixed: tuple[tuple[str, float], ...] = ()
    node_id: str | None = None
    pos: tuple[float, float] = (0.0, 0.0)

    @property
    def is_leaf(self) -> bool:
        return issubclass(NODE_TYPES[self.kind], LeafNode)

    @property
    def params(self) -> tuple[str, ...]:
        return NODE_TYPES[self.kind].PARAMS

    @property
    def label(self) -> str:
        """Palette name: ``matern52``, ``rbf``, ``sum``..."""
        return _MATERN_NAME.get(self.nu, "matern") if self.kind == "matern" else self.kind

    def prior(self, param: str) -> Gamma | LogNormal | None:
        return dict(self.priors).get(param)

    def value(self, param: str) -> float | None:
        return dict(self.fixed).get(param)


@dataclass(frozen=True)
class EditorDoc:
    """The editor's document: nodes (in creation order) and ``parent key -> child keys`` edges.

    Treat as immutable: edits build new documents (``dict`` fields are never mutated).
    """

    nodes: dict[str, EditorNode] = field(default_factory=dict)
    edges: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def children(self, key: str) -> tuple[str, ...]:
        return self.edges.get(key, ())

    def parent(self, key: str) -> str | None:
        for p, kids in self.edges.items():
            if key in kids:
                return p
        return None

    def roots(self) -> list[str]:
        has_parent = {k for kids in self.edges.values() for k in kids}
        return [k for k in self.nodes if k not in has_parent]

    def subtree(self, key: str) -> list[str]:
        out = [key]
        for kid in self.children(key):
            out.extend(self.subtree(kid))
        return out

    def with_node(self, node: EditorNode) -> EditorDoc:
        nodes = dict(self.nodes)
        nodes[node.key] = node
        return EditorDoc(nodes, dict(self.edges))

    def without_edge_to(self, child: str) -> EditorDoc:
        edges = {p: tuple(k for k in kids if k != child) for p, kids in self.edges.items()}
        return EditorDoc(dict(self.nodes), {p: kids for p, kids in edges.items() if kids})

    def with_edge(self, child: str, parent: str, index: int | None = None) -> EditorDoc:
        doc = self.without_edge_to(child)
        kids = list(doc.edges.get(parent, ()))
        kids.insert(len(kids) if index is None else index, child)
        edges = dict(doc.edges)
        edges[parent] = tuple(kids)
        return EditorDoc(dict(doc.nodes), edges)

    def without_node(self, key: str) -> EditorDoc:
        doc = self.without_edge_to(key)
        nodes = {k: n for k, n in doc.nodes.items() if k != key}
        edges = {p: kids for p, kids in doc.edges.items() if p != key}
        return EditorDoc(nodes, edges)


@dataclass(frozen=True)
class Analysis:
    """What a document means.

    Attributes:
        graph: The kernel graph when the document is complete and valid, else ``None``.
        errors: Editor key -> message for every node with a problem.
        status: One line for the status bar.
        root: Key of the main root (the largest tree), ``None`` for an empty canvas.
        detached: Keys of the other roots (unconnected parts).
        key_to_id: Editor key -> graph node id (only when ``graph`` is set).
    """

    graph: KernelGraph | None
    errors: dict[str, str]
    status: str
    root: str | None = None
    detached: frozenset[str] = frozenset()
    key_to_id: dict[str, str] = field(default_factory=dict)

    @property
    def id_to_key(self) -> dict[str, str]:
        return {v: k for k, v in self.key_to_id.items()}


def _node_error(node: EditorNode, doc: EditorDoc, features: Sequence[str] | None) -> str | None:
    n_kids = len(doc.children(node.key))
    if node.is_leaf:
        if not node.features:
            return f"{node.label} has no features: drop a feature chip on it or tick features in the panel"
        if features is not None:
            missing = [f for f in node.features if f not in features]
            if missing:
                names = ", ".join(repr(f) for f in missing)
                return (
                    f"{node.label} uses unknown feature{'s' if len(missing) > 1 else ''} {names}; "
                    f"known: {', '.join(features) or '(none)'}"
                )
        return None
    if n_kids == 0:
        if node.kind == "scale":
            return "scale has no input: wire one kernel into its input port"
        return f"empty {node.kind}: wire at least one kernel into its input port"
    if node.kind == "scale" and n_kids > 1:
        return f"scale takes exactly one input, got {n_kids}"
    return None


def _to_core(doc: EditorDoc, key: str) -> KernelNode:
    node = doc.nodes[key]
    kw: dict[str, Any] = {"id": node.node_id}
    for p in node.params:
        kw[f"{p}_prior"] = node.prior(p)
        kw[p] = node.value(p)
    if node.kind == "scale":
        return ScaleNode(_to_core(doc, doc.children(key)[0]), **kw)
    if node.kind in ("sum", "product"):
        cls = SumNode if node.kind == "sum" else ProductNode
        return cls(tuple(_to_core(doc, k) for k in doc.children(key)), id=node.node_id)
    if node.kind == "matern":
        kw["nu"] = node.nu
    return NODE_TYPES[node.kind](node.features, ard=node.ard, **kw)  # type: ignore[call-arg]


def analyze(doc: EditorDoc, features: Sequence[str] | None) -> Analysis:
    """Check a document and build its kernel graph when it is complete and valid.

    Args:
        doc: The editor document.
        features: The model's feature names (``None``: do not check leaf features).
    """
    if not doc.nodes:
        return Analysis(None, {}, "Empty canvas: drag a kernel from the palette (or double-click it).")
    errors: dict[str, str] = {}
    for node in doc.nodes.values():
        msg = _node_error(node, doc, features)
        if msg:
            errors[node.key] = msg
    roots = doc.roots()
    if not roots:  # pragma: no cover - edges never form cycles (connect refuses them)
        return Analysis(None, errors, "The graph has a cycle.")
    main = max(roots, key=lambda k: (len(doc.subtree(k)), -roots.index(k)))
    detached = frozenset(r for r in roots if r != main)
    problems = []
    if errors:
        first = next(iter(errors.values()))
        problems.append(f"{len(errors)} node{'s' if len(errors) > 1 else ''} with problems (first: {first})")
    if detached:
        n = len(detached)
        problems.append(f"{n} unconnected part{'s' if n > 1 else ''}: wire {'them' if n > 1 else 'it'} into an operator")
    if problems:
        return Analysis(None, errors, "Incomplete: " + "; ".join(problems), main, detached)
    try:
        graph = KernelGraph(_to_core(doc, main))
        if features is not None:
            graph.validate(features)
    except KernelGraphError as err:
        key = None
        if err.node_id is not None:
            key = next((n.key for n in doc.nodes.values() if n.node_id == err.node_id), None)
        if key is not None:
            errors[key] = str(err)
        return Analysis(None, errors, f"Invalid: {err}", main, detached)
    order = doc.subtree(main)
    key_to_id = {k: ref.node.id for k, ref in zip(order, graph.refs())}
    n_leaves = len(graph.leaves())
    used = graph.features_used()
    status = f"Valid kernel: {n_leaves} lea{'ves' if n_leaves != 1 else 'f'} over {len(used)} feature{'s' if len(used) != 1 else ''}"
    return Analysis(graph, errors, status, main, detached, key_to_id)  # type: ignore[arg-type]


def _node_from_core(node: KernelNode, key: str, index: int) -> EditorNode:
    auto = f"n{index}"
    kw: dict[str, Any] = {
        "key": key,
        "kind": node.KIND,
        "node_id": node.id if node.id != auto else None,
        "priors": tuple((p, getattr(node, f"{p}_prior")) for p in node.PARAMS if getattr(node, f"{p}_prior") is not None),
        "fixed": tuple((p, getattr(node, p)) for p in node.PARAMS if getattr(node, p) is not None),
    }
    if isinstance(node, LeafNode):
        kw["features"] = tuple(node.features)
        kw["ard"] = node.ard
    if isinstance(node, MaternNode):
        kw["nu"] = node.nu
    return EditorNode(**kw)


def doc_from_graph(graph: KernelGraph, new_key: Any) -> EditorDoc:
    """A document holding ``graph`` (positions all zero); ``new_key()`` gives fresh editor keys.

    Ids equal to the automatic ``n<i>`` are not stored, so edits renumber them as the graph does;
    other ids (e.g. the hands-on kernel's group names) are kept.
    """
    nodes: dict[str, EditorNode] = {}
    edges: dict[str, tuple[str, ...]] = {}
    keys: dict[str, str] = {}
    for i, ref in enumerate(graph.refs()):
        key = new_key()
        keys[ref.node.id] = key  # type: ignore[index]
        nodes[key] = _node_from_core(ref.node, key, i)
        if ref.parent_id is not None:
            parent = keys[ref.parent_id]
            edges[parent] = edges.get(parent, ()) + (key,)
    return EditorDoc(nodes, edges)


def connect(doc: EditorDoc, child_key: str, parent_key: str, index: int | None = None) -> EditorDoc:
    """The document with ``child_key``'s output wired into ``parent_key``'s input (moved from an
    old parent; a scale holds one input, so connecting another replaces the old one).

    Raises:
        KernelGraphError: Unknown keys, a leaf as parent, a node into itself, or a cycle.
    """
    for k in (child_key, parent_key):
        if k not in doc.nodes:
            raise KernelGraphError(f"no node with key {k!r} on the canvas")
    parent = doc.nodes[parent_key]
    if child_key == parent_key:
        raise KernelGraphError("cannot wire a node into itself", node_id=None)
    if parent.is_leaf:
        raise KernelGraphError(f"{parent.label} is a base kernel and has no input; wire into sum, product or scale")
    if parent_key in doc.subtree(child_key):
        raise KernelGraphError(f"wiring {doc.nodes[child_key].label} into {parent.label} would make a cycle")
    if doc.parent(child_key) == parent_key and index is None:
        return doc
    if parent.kind == "scale":
        for old in doc.children(parent_key):
            if old != child_key:
                doc = doc.without_edge_to(old)
    return doc.with_edge(child_key, parent_key, index)


def edit_node(node: EditorNode, attrs: Mapping[str, Any]) -> EditorNode:
    """``node`` with attributes changed: ``kind``, ``nu``, ``ard``, ``id``, ``features``,
    ``<param>``, ``<param>_prior``; validated with the core nodes' rules.

    Raises:
        KernelGraphError: A bad value (e.g. ``lengthscale=-1``), an attribute the kind lacks, or a
            change of kind across leaf / operator / scale.
    """
    attrs = dict(attrs)
    if "kind" in attrs:
        core, nu = core_kind(attrs.pop("kind"))
        to_leaf = issubclass(NODE_TYPES[core], LeafNode)
        if core != node.kind and (to_leaf != node.is_leaf or "scale" in (core, node.kind)):
            raise KernelGraphError(f"cannot turn a {node.label} into a {core}")
        params = NODE_TYPES[core].PARAMS
        node = replace(
            node,
            kind=core,
            nu=nu if nu is not None else node.nu,
            priors=tuple((p, v) for p, v in node.priors if p in params),
            fixed=tuple((p, v) for p, v in node.fixed if p in params),
        )
    priors = dict(node.priors)
    fixed = dict(node.fixed)
    for name, value in attrs.items():
        if name == "features":
            if not node.is_leaf:
                raise KernelGraphError(f"{node.label} is an operator; features go on base kernels")
            value = [value] if isinstance(value, str) else value
            node = replace(node, features=tuple(dict.fromkeys(value)))
        elif name == "ard":
            node = replace(node, ard=bool(value))
        elif name == "nu":
            if node.kind != "matern":
                raise KernelGraphError(f"{node.label} has no nu")
            node = replace(node, nu=float(value))
        elif name == "id":
            node = replace(node, node_id=value or None)
        elif name.endswith("_prior") and name[: -len("_prior")] in node.params:
            p = name[: -len("_prior")]
            if value is None:
                priors.pop(p, None)
            else:
                priors[p] = value
        elif name in node.params:
            if value is None:
                fixed.pop(name, None)
            else:
                fixed[name] = value
        else:
            raise KernelGraphError(f"{node.label} has no attribute {name!r}")
    order = node.params
    node = replace(
        node,
        priors=tuple((p, priors[p]) for p in order if p in priors),
        fixed=tuple((p, float(fixed[p])) for p in order if p in fixed),
    )
    _probe(node)
    return node


def _probe(node: EditorNode) -> None:
    """Validate a node's attributes with the core's rules (features/children stubbed)."""
    kw: dict[str, Any] = {"id": node.node_id}
    for p in node.params:
        kw[f"{p}_prior"] = node.prior(p)
        kw[p] = node.value(p)
    cls = NODE_TYPES[node.kind]
    if node.is_leaf:
        if node.kind == "matern":
            kw["nu"] = node.nu
        cls(node.features or ("_",), ard=node.ard, **kw)  # type: ignore[call-arg]
    elif node.kind == "scale":
        ScaleNode(MaternNode(("_",)), **kw)
