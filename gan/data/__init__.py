from gan.data.base import GANDataModule, check_data_module_class
from gan.data.digits import DigitsDataModule
from gan.data.toy2d import Toy2DDataModule
from gan.data.celeba import CelebADataModule
from gan.data.errors import DatasetFormatError, DatasetNotFoundError
from gan.data.image_data import ImageDataModule
from gan.data.image_folder import ImageFolderDataModule
from gan.data.stacked_mnist import StackedMNISTDataModule
from gan.data.torchvision_sets import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "GANDataModule", "check_data_module_class", "DigitsDataModule", "Toy2DDataModule",
    "ImageDataModule", "MNISTDataModule", "FashionMNISTDataModule", "CIFAR10DataModule", "CelebADataModule",
    "ImageFolderDataModule", "StackedMNISTDataModule", "DatasetNotFoundError", "DatasetFormatError",
]
