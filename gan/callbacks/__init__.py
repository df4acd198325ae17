from gan.callbacks.checkpoint import GANModelCheckpoint
from gan.callbacks.dashboard import GeneratorStepAxis
from gan.callbacks.gan_health import GANHealth
from gan.callbacks.grad_norm import GradNorm
from gan.callbacks.metrics import MetricsCallback
from gan.callbacks.progress import GANProgressBar
from gan.callbacks.sample_grid import SampleGrid

__all__ = ["GANModelCheckpoint", "SampleGrid", "GeneratorStepAxis", "GANHealth", "GradNorm", "MetricsCallback", "GANProgressBar"]
