"""The session's features as a BoTorch input transform, shared by the GP and the LLA.

Every surrogate sees the same inputs: unit-cube encodings of configurations (``... x d``), turned by
:class:`FeatureInputTransform` (the session's compiled transform chain, differentiable) into named
features, then by BoTorch's ``Normalize`` into the unit cube by the features' known bounds.
:func:`feature_input_transform` chains the two (``None`` when the chain is the identity on the
encodings, so that the model sees the encodings unchanged). A ``SingleTaskGP`` and a
:class:`~lla_studio.core.surrogates.lla.LinearizedLaplaceModel` take it as ``input_transform``.
"""

from __future__ import annotations

import torch
from botorch.models.transforms.input import ChainedInputTransform, InputTransform, Normalize

from lla_studio.core.features import FeatureMap

__all__ = ["FeatureInputTransform", "feature_input_transform"]


class FeatureInputTransform(InputTransform):
    """Unit-cube encodings ``... x d`` -> named features ``... x m`` (the session's transform chain).

    The features of the newest input that needs no gradient are cached: while the hyperparameters
    are fitted, BoTorch transforms the same training inputs twice per loss evaluation (model and
    likelihood), and on the 19-parameter CNN space the chain cost 3.3 ms a call, more than the
    kernel itself (a fit at n = 40 took 3.6x a plain BoTorch fit on precomputed features).
    Inputs that need a gradient (acquisition optimization) are always transformed afresh.
    """

    def __init__(self, feature_map: FeatureMap) -> None:
        super().__init__()
        self.feature_map = feature_map
        self.transform_on_train = True
        self.transform_on_eval = True
        self.transform_on_fantasize = True
        self._cached: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        if X.requires_grad:
            return self.feature_map(X)
        cached = self._cached
        if cached is not None and cached[0] is X and cached[1] == X._version:
            return cached[2]
        out = self.feature_map(X)
        self._cached = (X, X._version, out)
        return out

    def equals(self, other: InputTransform) -> bool:
        return isinstance(other, FeatureInputTransform) and other.feature_map is self.feature_map


def feature_input_transform(feature_map: FeatureMap, dtype: torch.dtype = torch.float64) -> InputTransform | None:
    """Encodings -> features normalized to the unit cube (None: the chain is the identity on them)."""
    if feature_map.is_identity_on_unit_cube:
        return None
    bounds = torch.as_tensor(feature_map.feature_bounds(), dtype=dtype)
    return ChainedInputTransform(
        features=FeatureInputTransform(feature_map),
        normalize=Normalize(d=bounds.shape[-1], bounds=bounds),
    )
