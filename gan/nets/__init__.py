from gan.nets.base import Discriminator, Generator
from gan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gan.nets.mlp import MLPDiscriminator, MLPGenerator

__all__ = ["Discriminator", "Generator", "DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]
