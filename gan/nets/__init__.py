from gan.nets.base import Discriminator, DiscriminatorOutput, Generator
from gan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan.nets.layers import ConditionalBatchNorm, MinibatchDiscrimination, MinibatchStdDev
from gan.nets.mlp import MLPDiscriminator, MLPGenerator
from gan.nets.r3gan import R3GANDiscriminator, R3GANGenerator
from gan.nets.resnet import ResNetDiscriminator, ResNetGenerator

__all__ = [
    "Discriminator",
    "DiscriminatorOutput",
    "Generator",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "MLPDiscriminator",
    "MLPGenerator",
    "R3GANDiscriminator",
    "R3GANGenerator",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "ConditionalBatchNorm",
    "MinibatchDiscrimination",
    "MinibatchStdDev",
]
