"""fashion-ddpm: a class-conditional DDPM for Fashion-MNIST, as a diffusers pipeline."""

from .pipeline_fashion_ddpm import (
    DEFAULT_SCHEDULER_CONFIG,
    DEFAULT_UNET_CONFIG,
    FASHION_MNIST_CLASSES,
    FashionDDPMPipeline,
)

__all__ = ["FashionDDPMPipeline", "FASHION_MNIST_CLASSES", "DEFAULT_UNET_CONFIG", "DEFAULT_SCHEDULER_CONFIG"]
__version__ = "0.1.0"
