import os
from pathlib import Path

import pytest
import torch

from pipeline import FashionDDPMPipeline
from pipeline.data import DEBIAN_DIR, IDX_FILES

TINY_UNET = {"block_out_channels": (8, 16, 16), "norm_num_groups": 4, "layers_per_block": 1}

# Real-data tests read the IDX files from $FASHION_MNIST_DIR, else Debian's dataset-fashion-mnist package.
DATA_DIR = Path(os.environ.get("FASHION_MNIST_DIR") or DEBIAN_DIR)
HAVE_DATA = all((DATA_DIR / name).is_file() for files in IDX_FILES.values() for name in files)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    for item in items:  # real-data tests are slow-tier tests
        if item.get_closest_marker("needs_data"):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_data") and not HAVE_DATA:
        reason = (f"Fashion-MNIST IDX files not found in {DATA_DIR} (set FASHION_MNIST_DIR or "
                  "apt-get install dataset-fashion-mnist)")
        if IN_CI:  # a green CI must mean the real-data tests ran
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)


def make_tiny_pipeline(seed: int = 0, **scheduler) -> FashionDDPMPipeline:
    """A randomly initialised pipeline small enough for a few milliseconds per step (diffusers-test style)."""
    torch.manual_seed(seed)
    pipe = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET, scheduler=scheduler or None)
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
