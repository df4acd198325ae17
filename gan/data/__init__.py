from gan.data.base import GANDataModule
from gan.data.digits import DigitsDataModule
from gan.data.toy2d import Toy2DDataModule

__all__ = ["GANDataModule", "DigitsDataModule", "Toy2DDataModule"]
