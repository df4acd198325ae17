from gan.losses.adversarial import (
    AdversarialLoss,
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    WassersteinLoss,
)
from gan.losses.penalties import (
    GradientPenalty,
    LeCamPenalty,
    R1Penalty,
    clip_weights,
    gradient_norm_penalty,
    interpolate,
)
from gan.losses.tricks import (
    InstanceNoise,
    LabelTargets,
    add_instance_noise,
    auxiliary_classification_loss,
    feature_matching_loss,
    instance_noise_std,
)

__all__ = [
    "AdversarialLoss",
    "HingeLoss",
    "LeastSquaresLoss",
    "MinimaxLoss",
    "NonSaturatingLoss",
    "WassersteinLoss",
    "GradientPenalty",
    "R1Penalty",
    "LeCamPenalty",
    "InstanceNoise",
    "LabelTargets",
    "add_instance_noise",
    "auxiliary_classification_loss",
    "feature_matching_loss",
    "instance_noise_std",
    "clip_weights",
    "gradient_norm_penalty",
    "interpolate",
]
