"""Per-point Jacobians ``J(x) = df(x; theta)/dtheta`` of scalar-output networks.

Two paths give the same numbers (a test checks it):

* generic: ``torch.func.vmap(torch.func.grad_and_value(...))`` over ``functional_call``, for any
  module (e.g. the CNN);
* linear stacks (``nn.Sequential`` of ``nn.Linear`` and parameter-free elementwise activations,
  i.e. every ``MLPSpec`` network): one batched backward pass gives ``g_l = df/dz_l`` for every
  pre-activation ``z_l`` and the Jacobian blocks are outer products ``g_l a_{l-1}^T`` (weights)
  and ``g_l`` (biases), as BackPACK's BatchGrad does. This is several times faster than the
  vmap path on large grids.

Both are differentiable with respect to ``x`` when ``x`` requires grad (second-order autograd),
which botorch's acquisition optimization needs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

__all__ = [
    "ELEMENTWISE",
    "JacobianFeatures",
    "is_linear_stack",
    "network_features",
]

ELEMENTWISE: tuple[type[nn.Module], ...] = (nn.ReLU, nn.Tanh, nn.GELU, nn.Softplus, nn.Identity)


def is_linear_stack(net: nn.Module) -> bool:
    """True for an ``nn.Sequential`` of ``nn.Linear`` and elementwise activations ending in a
    ``Linear(h, 1)``."""
    return (
        isinstance(net, nn.Sequential)
        and len(net) > 0
        and isinstance(net[-1], nn.Linear)
        and net[-1].out_features == 1
        and all(isinstance(m, (nn.Linear, *ELEMENTWISE)) for m in net)
    )


def _generic(net: nn.Module, theta: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    def f_single(params: dict[str, Tensor], xi: Tensor) -> Tensor:
        return functional_call(net, params, (xi.unsqueeze(0),)).squeeze()

    grads, f = vmap(grad_and_value(f_single), in_dims=(None, 0))(theta, x)
    return f, torch.cat([grads[k].reshape(x.shape[0], -1) for k in theta], dim=-1)


def _linear_stack(
    net: nn.Sequential, theta: dict[str, Tensor], x: Tensor
) -> tuple[Tensor, JacobianFeatures]:
    create_graph = x.requires_grad and torch.is_grad_enabled()
    with torch.enable_grad():
        h, acts, pres, biased = x, [], [], []
        for i, module in enumerate(net):
            if isinstance(module, nn.Linear):
                acts.append(h)
                biased.append(f"{i}.bias" in theta)
                z = nn.functional.linear(h, theta[f"{i}.weight"], theta.get(f"{i}.bias"))
                if not z.requires_grad:  # x and the weights are constants: start the graph here
                    z = z.detach().requires_grad_(True)
                pres.append(z)
                h = z
            else:
                h = module(h)
        f = h.squeeze(-1)
        gs = torch.autograd.grad(f.sum(), pres, create_graph=create_graph)
    if not create_graph:
        f, gs, acts = f.detach(), [g.detach() for g in gs], [a.detach() for a in acts]
    return f, JacobianFeatures(layers=list(zip(gs, acts, biased)))


class JacobianFeatures:
    """Jacobian rows ``J(x)`` of a batch of points, dense or factored by linear layer.

    Dense: a ``... x m x p`` tensor. Factored (linear stacks): per layer ``l`` the output
    gradients ``G_l`` (``... x m x out_l``) and inputs ``A_l`` (``... x m x in_l``), with
    ``J_l(x) = [vec(g_l(x) a_l(x)^T), g_l(x)]``. Then the empirical NTK is
    ``J(x) . J(x') = sum_l (g_l . g_l') (a_l . a_l' + 1)``: ``O(sum_l (in_l + out_l))`` per pair
    instead of ``O(p)``, and ``J`` never needs to be materialized.
    """

    def __init__(
        self,
        dense: Tensor | None = None,
        layers: list[tuple[Tensor, Tensor, bool]] | None = None,
    ) -> None:
        if (dense is None) == (layers is None):
            raise ValueError("JacobianFeatures: give exactly one of dense, layers")
        self._dense = dense
        self.layers = layers

    @property
    def is_factored(self) -> bool:
        return self.layers is not None

    @property
    def n_params(self) -> int:
        if self._dense is not None:
            return self._dense.shape[-1]
        return sum(g.shape[-1] * (a.shape[-1] + int(b)) for g, a, b in self.layers)

    def _map(self, fn) -> JacobianFeatures:
        if self._dense is not None:
            return JacobianFeatures(dense=fn(self._dense))
        return JacobianFeatures(layers=[(fn(g), fn(a), b) for g, a, b in self.layers])

    def reshape(self, *lead: int) -> JacobianFeatures:
        """Reshape the leading (point) dimensions."""
        return self._map(lambda t: t.reshape(*lead, t.shape[-1]))

    def __getitem__(self, idx) -> JacobianFeatures:
        return self._map(lambda t: t[idx])

    @staticmethod
    def cat(parts: list[JacobianFeatures]) -> JacobianFeatures:
        """Concatenate along the point dimension (leading dims must be 1-D)."""
        if len(parts) == 1:
            return parts[0]
        if parts[0]._dense is not None:
            return JacobianFeatures(dense=torch.cat([p._dense for p in parts]))
        return JacobianFeatures(
            layers=[
                (
                    torch.cat([p.layers[i][0] for p in parts]),
                    torch.cat([p.layers[i][1] for p in parts]),
                    b,
                )
                for i, (_, _, b) in enumerate(parts[0].layers)
            ]
        )

    def dense(self) -> Tensor:
        """The ``... x p`` Jacobian, columns in ``parameters_to_vector`` order."""
        if self._dense is not None:
            return self._dense
        blocks = []
        for g, a, biased in self.layers:
            blocks.append((g.unsqueeze(-1) * a.unsqueeze(-2)).flatten(-2))
            if biased:
                blocks.append(g)
        return torch.cat(blocks, dim=-1)

    def gram(self, other: JacobianFeatures) -> Tensor:
        """``J_self J_other^T``: ``... x m1 x m2`` (leading dims broadcast like matmul)."""
        if self.is_factored and other.is_factored:
            out = None
            for (g1, a1, b), (g2, a2, _) in zip(self.layers, other.layers):
                aa = a1 @ a2.transpose(-1, -2)
                term = (g1 @ g2.transpose(-1, -2)) * (aa + 1 if b else aa)
                out = term if out is None else out + term
            return out
        return self.dense() @ other.dense().transpose(-1, -2)

    def sq_norms(self) -> Tensor:
        """``||J(x)||^2`` for every point: ``... x m``."""
        if self._dense is not None:
            return (self._dense * self._dense).sum(-1)
        out = None
        for g, a, b in self.layers:
            aa = (a * a).sum(-1)
            term = (g * g).sum(-1) * (aa + 1 if b else aa)
            out = term if out is None else out + term
        return out


def network_features(
    net: nn.Module,
    theta: dict[str, Tensor],
    x: Tensor,
    subset_of_weights: str = "all",
) -> tuple[Tensor, JacobianFeatures]:
    """Outputs and Jacobian features of a scalar-output network with respect to its weights.

    Args:
        net: The network (``n x d -> n x 1``).
        theta: Its parameters by name, in ``named_parameters`` order (detached).
        x: A ``m x d`` tensor of inputs.
        subset_of_weights: ``"all"``, or ``"last_layer"`` (weights and bias of the final
            ``nn.Linear``; needs an ``nn.Sequential``).

    Returns:
        ``f`` (``m``) and the ``JacobianFeatures`` of the ``m`` points (factored for linear
        stacks, dense otherwise); differentiable in ``x`` when ``x`` requires grad.
    """
    if subset_of_weights == "last_layer":
        phi = net[:-1](x) if len(net) > 1 else x
        head = net[-1]
        idx = len(net) - 1
        f = nn.functional.linear(phi, theta[f"{idx}.weight"], theta.get(f"{idx}.bias")).squeeze(-1)
        cols = [phi] + ([torch.ones_like(phi[:, :1])] if head.bias is not None else [])
        return f, JacobianFeatures(dense=torch.cat(cols, dim=-1))
    if is_linear_stack(net) and set(theta) == {k for k, _ in net.named_parameters()}:
        return _linear_stack(net, theta, x)
    f, J = _generic(net, theta, x)
    return f, JacobianFeatures(dense=J)
