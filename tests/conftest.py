import pytest
import torch

from pipeline import FashionDDPMPipeline

TINY_UNET = {"block_out_channels": (8, 16, 16), "norm_num_groups": 4, "layers_per_block": 1}


def make_tiny_pipeline(seed: int = 0) -> FashionDDPMPipeline:
    """A randomly initialised pipeline small enough for a few milliseconds per step (diffusers-test style)."""
    torch.manual_seed(seed)
    pipe = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def tiny_pipe():
    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_saved(tmp_path_factory):
    """A tiny pipeline saved once to disk for load / CLI tests."""
    path = tmp_path_factory.mktemp("tiny") / "pipe"
    make_tiny_pipeline().save_pretrained(path)
    return path


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
