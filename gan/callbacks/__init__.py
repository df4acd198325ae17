from gan.callbacks.checkpoint import GANModelCheckpoint
from gan.callbacks.sample_grid import SampleGrid

__all__ = ["GANModelCheckpoint", "SampleGrid"]
