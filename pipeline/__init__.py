"""fashion-ddpm: a class-conditional DDPM for Fashion-MNIST, as a diffusers pipeline.

Public names are imported on first use (PEP 562 module `__getattr__`), so `fashion-ddpm --help`, config errors and
the other argument checks answer without importing torch or diffusers (~6 s on a 2-core CPU).

    from pipeline import FashionDDPMPipeline, SamplingSettings, generate, load_pipeline
    from pipeline import FashionDDPMStudentPipeline  # a distilled few-step model
"""

from __future__ import annotations

import importlib

__version__ = "0.3.0"

# public name -> module that defines it
_LAZY = {
    "FashionDDPMPipeline": "pipeline.pipeline_fashion_ddpm",
    "FashionDDPMStudentPipeline": "pipeline.pipeline_fashion_ddpm",
    "FASHION_MNIST_CLASSES": "pipeline.pipeline_fashion_ddpm",
    "DEFAULT_UNET_CONFIG": "pipeline.pipeline_fashion_ddpm",
    "DEFAULT_SCHEDULER_CONFIG": "pipeline.pipeline_fashion_ddpm",
    "resolve_class_ids": "pipeline.pipeline_fashion_ddpm",
    "generate": "pipeline.sampling",
    "SamplingSettings": "pipeline.settings",
    "image_seed": "pipeline.sampling",
    "use_sampler": "pipeline.schedulers",
    "SAMPLERS": "pipeline.schedulers",
    "load_pipeline": "pipeline.models",
    "DEFAULT_MODEL": "pipeline.models",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
