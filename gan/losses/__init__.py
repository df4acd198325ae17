from gan.losses.adversarial import (
    AdversarialLoss,
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    WassersteinLoss,
)
from gan.losses.penalties import GradientPenalty, clip_weights, gradient_norm_penalty, interpolate

__all__ = [
    "AdversarialLoss",
    "HingeLoss",
    "LeastSquaresLoss",
    "MinimaxLoss",
    "NonSaturatingLoss",
    "WassersteinLoss",
    "GradientPenalty",
    "clip_weights",
    "gradient_norm_penalty",
    "interpolate",
]
