"""``KernelGraph``: the container a session stores, the GP compiles and the GUI editor edits.

A graph is a frozen tree of :mod:`~lla_studio.core.kernels.nodes` with unique node ids. Building one
assigns ids to nodes whose ``id`` is ``None``, deterministically: the node at pre-order position ``i``
(root = 0, then each child's subtree in order) gets ``"n<i>"`` unless another node already uses it,
in which case it gets the smallest free ``"n<k>"``. Consequences: ids never change under a rebuild
(``KernelGraph(g.root) == g``), and the text form can leave out ids equal to ``"n<i>"``.

The edit helpers (:meth:`KernelGraph.replace`, :meth:`KernelGraph.remove`,
:meth:`KernelGraph.with_child`) return new graphs; node ids of untouched nodes never change, so an
editor can keep its selection across edits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lla_studio.core.errors import KernelGraphError
from lla_studio.core.kernels.nodes import (
    MAX_DEPTH,
    KernelNode,
    LeafNode,
    ProductNode,
    ScaleNode,
    SumNode,
    node_from_dict,
)

__all__ = ["KernelGraph", "NodeRef"]


@dataclass(frozen=True)
class NodeRef:
    """Where a node sits in its graph.

    Attributes:
        node: The node.
        path: JSON path of the node (``kernel.children[2].child``).
        parent_id: Id of its parent (``None`` for the root).
        index: Its position among the parent's children (0 for the root and a scale's child).
        depth: 0 for the root.
    """

    node: KernelNode
    path: str
    parent_id: str | None
    index: int
    depth: int


def _walk(node: KernelNode, path: str, parent: str | None = None, index: int = 0, depth: int = 0) -> Iterator[NodeRef]:
    yield NodeRef(node, path, parent, index, depth)
    if isinstance(node, ScaleNode):
        yield from _walk(node.child, f"{path}.child", node.id, 0, depth + 1)
    else:
        for i, kid in enumerate(node.child_nodes()):
            yield from _walk(kid, f"{path}.children[{i}]", node.id, i, depth + 1)


def _check_depth(root: KernelNode, path: str) -> None:
    """Refuse a tree deeper than :data:`~lla_studio.core.kernels.nodes.MAX_DEPTH`, without recursion
    (a node built in Python may hold a chain of any length)."""
    stack = [(root, path, 1)]
    while stack:
        node, here, level = stack.pop()
        if level > MAX_DEPTH:
            nid = node.id if isinstance(node.id, str) else None
            raise KernelGraphError(f"{here}: kernel graph nested more than {MAX_DEPTH} levels deep", node_id=nid)
        if isinstance(node, ScaleNode):
            stack.append((node.child, f"{here}.child", level + 1))
        else:
            stack.extend((kid, f"{here}.children[{i}]", level + 1) for i, kid in enumerate(node.child_nodes()))


def _assign_ids(root: KernelNode, path: str) -> KernelNode:
    """Check that explicit ids are unique, then give every ``None`` id its deterministic value."""
    where: dict[str, str] = {}
    for ref in _walk(root, path):
        nid = ref.node.id
        if nid is None:
            continue
        if nid in where:
            raise KernelGraphError(
                f"{ref.path}.id: duplicate node id {nid!r} (also used at {where[nid]})", node_id=nid
            )
        where[nid] = ref.path
    if len(where) == sum(1 for _ in _walk(root, path)):
        return root
    used = set(where)
    counter = [0, 0]  # pre-order position, next fallback candidate

    def fresh(i: int) -> str:
        cand = f"n{i}"
        if cand not in used:
            return cand
        while f"n{counter[1]}" in used:
            counter[1] += 1
        return f"n{counter[1]}"

    def rebuild(node: KernelNode) -> KernelNode:
        i = counter[0]
        counter[0] += 1
        nid = node.id
        if nid is None:
            nid = fresh(i)
            used.add(nid)
        kids = node.child_nodes()
        new_kids = tuple(rebuild(k) for k in kids)
        if any(a is not b for a, b in zip(kids, new_kids)):
            node = node.with_child_nodes(new_kids)
        return node.with_id(nid)

    return rebuild(root)


@dataclass(frozen=True)
class KernelGraph:
    """A kernel graph: a root node whose subtree has unique, assigned ids.

    Args:
        root: The root node. Nodes with ``id=None`` get deterministic ids (see module docstring).

    Raises:
        KernelGraphError: Two nodes share an id (``node_id`` is that id), ``root`` is no node, or the
            tree is deeper than :data:`~lla_studio.core.kernels.nodes.MAX_DEPTH` levels.
    """

    root: KernelNode

    def __post_init__(self) -> None:
        if not isinstance(self.root, KernelNode):
            raise KernelGraphError(f"kernel: the root must be a kernel node, got {type(self.root).__name__}")
        _check_depth(self.root, "kernel")
        object.__setattr__(self, "root", _assign_ids(self.root, "kernel"))

    # -- queries -----------------------------------------------------------------------------
    def nodes(self) -> Iterator[KernelNode]:
        """All nodes in pre-order (root first); each has its ``id`` set."""
        return (ref.node for ref in _walk(self.root, "kernel"))

    def refs(self, path: str = "kernel") -> Iterator[NodeRef]:
        """All nodes in pre-order with their JSON path, parent id, index and depth."""
        return _walk(self.root, path)

    def ids(self) -> tuple[str, ...]:
        """Node ids in pre-order."""
        return tuple(n.id for n in self.nodes())  # type: ignore[misc]

    def ref(self, node_id: str) -> NodeRef:
        """The :class:`NodeRef` of a node.

        Raises:
            KernelGraphError: No node has this id.
        """
        for ref in _walk(self.root, "kernel"):
            if ref.node.id == node_id:
                return ref
        raise KernelGraphError(f"no node with id {node_id!r} in the kernel graph", node_id=node_id)

    def find(self, node_id: str) -> KernelNode:
        """The node with this id.

        Raises:
            KernelGraphError: No node has this id.
        """
        return self.ref(node_id).node

    def parent(self, node_id: str) -> KernelNode | None:
        """The parent of a node (``None`` for the root)."""
        pid = self.ref(node_id).parent_id
        return None if pid is None else self.find(pid)

    def leaves(self) -> tuple[LeafNode, ...]:
        """The base-kernel leaves in pre-order."""
        return tuple(n for n in self.nodes() if isinstance(n, LeafNode))

    def features_used(self) -> tuple[str, ...]:
        """Feature names the leaves use, each once, in order of first use."""
        out: dict[str, None] = {}
        for leaf in self.leaves():
            out.update(dict.fromkeys(leaf.features))
        return tuple(out)

    def validate(self, feature_names: Sequence[str], path: str = "kernel") -> KernelGraph:
        """Check the graph against the feature names of a feature map.

        Node-local rules (ν, empty sums, leaves without features, prior parameters, ids) are
        checked when nodes and graphs are built; this adds the check that every leaf feature exists.

        Args:
            feature_names: Names of the model's input features, in column order.
            path: JSON path of the graph, the prefix of error messages.

        Returns:
            ``self``, for chaining.

        Raises:
            KernelGraphError: A leaf uses an unknown feature:
                ``kernel.children[2].features: unknown feature 'lrate' (node 'n5'); known: ...``.
        """
        if isinstance(feature_names, str):
            raise KernelGraphError(f"feature_names must be a list of names, got the string {feature_names!r}")
        known = list(feature_names)
        if len(set(known)) != len(known):
            dup = next(f for i, f in enumerate(known) if f in known[:i])
            raise KernelGraphError(f"feature names list {dup!r} twice")
        known_set = set(known)
        for ref in _walk(self.root, path):
            node = ref.node
            if isinstance(node, LeafNode):
                for i, f in enumerate(node.features):
                    if f not in known_set:
                        raise KernelGraphError(
                            f"{ref.path}.features: unknown feature {f!r} (node {node.id!r}); "
                            f"known: {', '.join(known) or '(none)'}",
                            node_id=node.id,
                        )
        return self

    # -- edits (each returns a new graph) ----------------------------------------------------
    def replace(self, node_id: str, new_node: KernelNode) -> KernelGraph:
        """A graph with the subtree at ``node_id`` replaced by ``new_node``.

        If ``new_node.id`` is ``None`` it keeps ``node_id`` (so a selection survives "change this
        Matérn into an RBF"); other ``None`` ids in ``new_node`` get fresh ids.

        Raises:
            KernelGraphError: Unknown ``node_id``, or ``new_node`` reuses an id found elsewhere.
        """
        self.ref(node_id)
        if not isinstance(new_node, KernelNode):
            raise KernelGraphError(f"replacement for node {node_id!r} must be a kernel node", node_id=node_id)
        if new_node.id is None:
            new_node = new_node.with_id(node_id)
        return KernelGraph(_map(self.root, node_id, lambda _: new_node))  # type: ignore[arg-type]

    def remove(self, node_id: str) -> KernelGraph:
        """A graph without the subtree at ``node_id``.

        A parent left empty (a scale, or a sum/product whose last child goes) is removed too,
        recursively; a sum/product with one child left stays as it is.

        Raises:
            KernelGraphError: Unknown ``node_id``, or the removal would leave no kernel at all.
        """
        self.ref(node_id)
        new_root = _map(self.root, node_id, lambda _: None)
        if new_root is None:
            raise KernelGraphError(
                f"cannot remove node {node_id!r}: the kernel graph would be empty", node_id=node_id
            )
        return KernelGraph(new_root)

    def with_child(self, parent_id: str, child: KernelNode, index: int | None = None) -> KernelGraph:
        """A graph with ``child`` inserted under the sum or product ``parent_id``.

        Args:
            parent_id: Id of a sum or product node.
            child: The subtree to insert; its ``None`` ids get fresh ids.
            index: Position among the children (``None``: append). Negative values count from
                the end as in ``list.insert``.

        Raises:
            KernelGraphError: Unknown parent, a parent that is a leaf or a scale (which holds
                exactly one child; use :meth:`replace`), or an id clash.
        """
        parent = self.find(parent_id)
        if not isinstance(parent, (SumNode, ProductNode)):
            what = "a scale node holds exactly one child; use replace()" if isinstance(parent, ScaleNode) else (
                f"a {parent.KIND} leaf has no children"
            )
            raise KernelGraphError(f"cannot add a child to node {parent_id!r}: {what}", node_id=parent_id)
        if not isinstance(child, KernelNode):
            raise KernelGraphError(f"child for node {parent_id!r} must be a kernel node", node_id=parent_id)
        kids = list(parent.children)
        kids.insert(len(kids) if index is None else index, child)
        new_parent = parent.with_child_nodes(kids)
        return KernelGraph(_map(self.root, parent_id, lambda _: new_parent))  # type: ignore[arg-type]

    # -- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON form: the root node's dict (every node with its ``id``)."""
        return self.root.to_dict()

    @classmethod
    def from_dict(cls, d: Any, path: str = "kernel") -> KernelGraph:
        """Read a graph from :meth:`to_dict` output.

        Args:
            d: The root node's dict.
            path: JSON path of ``d``, the prefix of every error message.

        Raises:
            KernelGraphError: Malformed dict or duplicate ids; the message starts with the JSON path.
        """
        root = _assign_ids(node_from_dict(d, path), path)  # duplicate-id errors name ``path``
        return cls(root)


def _map(node: KernelNode, target: str, fn: Any) -> KernelNode | None:
    """Rebuild ``node`` with ``fn(old)`` in place of the node ``target`` (``None`` removes it)."""
    if node.id == target:
        return fn(node)
    kids = node.child_nodes()
    if not kids:
        return node
    new_kids = [_map(k, target, fn) for k in kids]
    if all(a is b for a, b in zip(kids, new_kids)):
        return node
    kept = [k for k in new_kids if k is not None]
    if not kept:
        return None
    return node.with_child_nodes(kept)
