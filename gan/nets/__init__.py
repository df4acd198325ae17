from gan.nets.base import Discriminator, DiscriminatorOutput, Generator
from gan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan.nets.layers import ConditionalBatchNorm, MinibatchDiscrimination, MinibatchStdDev
from gan.nets.mlp import MLPDiscriminator, MLPGenerator

__all__ = [
    "Discriminator",
    "DiscriminatorOutput",
    "Generator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "ConditionalBatchNorm",
    "MinibatchDiscrimination",
    "MinibatchStdDev",
]
