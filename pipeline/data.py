"""Fashion-MNIST (or any image + label dataset) as in-memory uint8 tensors.

On 2 CPU cores DataLoader workers cost more than they give, so the whole training set (47 MB for 60k images) lives in
one uint8 tensor and batches are indexed out of it.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .pipeline_fashion_ddpm import FASHION_MNIST_CLASSES

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
HUB_DATASET = "zalando-datasets/fashion_mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def how_to_get_data(data_flag: str = "data_dir=DIR") -> str:
    """The ways to provide Fashion-MNIST, in one line; `data_flag` is how the calling command names the folder."""
    return (f"Fashion-MNIST was not found: pass {data_flag} (or set FASHION_MNIST_DIR) for a folder with the four "
            f"original IDX .gz files; or `apt-get install -y dataset-fashion-mnist` (installs them into {DEBIAN_DIR}); "
            f"or go online so that `datasets` can download {HUB_DATASET}")


@dataclass
class ImageDataset:
    images: torch.Tensor  # N x H x W, uint8
    labels: torch.Tensor  # N, int64
    class_names: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an IDX file (optionally gzipped), the format of the original MNIST / Fashion-MNIST files.

    Raises:
        ValueError: one line naming the file and what was expected, for a file that is not gzip (when named .gz),
            truncated, or not an unsigned-byte IDX file.
    """
    compressed = str(path).endswith(".gz")
    expected = (f"expected the original {'gzip-compressed ' if compressed else ''}IDX file (re-download it, or "
                "`apt-get install -y dataset-fashion-mnist`)")
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            data = f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # truncated, corrupt, or not gzip at all
        raise ValueError(f"{path} cannot be read ({type(e).__name__}: {e}); {expected}") from None
    if len(data) < 4 or data[0] or data[1] or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (header {data[:4]!r}); {expected}")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path} is truncated inside its header; {expected}")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: its header says {shape}, it holds {array.size:,} of "
                         f"{int(np.prod(shape)):,} bytes of data; {expected}")
    return array.reshape(shape)


def _idx_source(folder: str) -> str:
    """How a model card names the data: no machine-specific absolute paths, except Debian's standard one."""
    if os.path.abspath(folder) == DEBIAN_DIR:
        return f"Fashion-MNIST IDX files ({DEBIAN_DIR}, Debian package dataset-fashion-mnist)"
    return "Fashion-MNIST IDX files (" + (folder if not os.path.isabs(folder) else "$FASHION_MNIST_DIR / data_dir") + ")"


def _from_idx_folder(folder: str, split: str) -> ImageDataset | None:
    image_file, label_file = (Path(folder) / name for name in IDX_FILES[split])
    if not (image_file.is_file() and label_file.is_file()):
        return None
    images, labels = read_idx(image_file), read_idx(label_file)
    if len(images) != len(labels):
        raise ValueError(f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels")
    return ImageDataset(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)),
                        list(FASHION_MNIST_CLASSES), _idx_source(folder))


def _from_datasets(name: str, split: str) -> ImageDataset:
    import datasets

    if os.path.isdir(name) and any((Path(name) / f).is_file() for f in ("state.json", "dataset_dict.json")):
        ds = datasets.load_from_disk(name)  # a save_to_disk folder (`fashion-ddpm synthesize --format arrow`)
        ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
    elif os.path.isdir(name):  # a folder of data files (parquet, imagefolder: synthesize's other formats; csv, ...)
        # read afresh: `datasets` keys its cache on the folder's path, so a folder rewritten in place (a new synthesize
        # run into a deleted folder) would otherwise load the old images
        ds = datasets.load_dataset(name, split=split, download_mode="force_redownload")
    else:  # a Hub id
        ds = datasets.load_dataset(name, split=split)
    image_col = next((c for c in ("image", "img", "pixel_values") if c in ds.column_names), None)
    label_col = next((c for c in ("label", "labels", "class") if c in ds.column_names), None)
    if image_col is None or label_col is None:
        raise ValueError(f"dataset {name!r} needs an image and a label column; it has {ds.column_names}")
    images = np.stack([np.asarray(img.convert("L")) for img in ds[image_col]])
    feature = ds.features[label_col]
    names = list(feature.names) if hasattr(feature, "names") else [str(i) for i in sorted(set(ds[label_col]))]
    return ImageDataset(torch.from_numpy(images), torch.tensor(ds[label_col], dtype=torch.int64), names, f"datasets:{name}")


def load_dataset(data_dir: str | None = None, dataset: str | None = None, split: str = "train",
                 data_flag: str = "data_dir=DIR") -> ImageDataset:
    """Finds the data in the documented order: data_dir / $FASHION_MNIST_DIR, Debian's package, the Hub.

    Raises:
        FileNotFoundError: with `how_to_get_data(data_flag)` when no source has it.
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be one of {list(IDX_FILES)}, got {split!r}")
    if dataset:
        return _from_datasets(dataset, split)
    folder = data_dir or os.environ.get("FASHION_MNIST_DIR")
    if folder:
        found = _from_idx_folder(folder, split)
        if found is None:
            raise FileNotFoundError(f"{folder} does not hold {' and '.join(IDX_FILES[split])}. {how_to_get_data(data_flag)}")
        return found
    found = _from_idx_folder(DEBIAN_DIR, split)
    if found is not None:
        return found
    try:
        return _from_datasets(HUB_DATASET, split)
    except Exception as e:  # offline, no `datasets` cache, ...: one clear message instead of a network traceback
        raise FileNotFoundError(f"{how_to_get_data(data_flag)} (the Hub download failed: {type(e).__name__})") from None


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 N×H×W -> float N×1×H×W in [-1, 1], the range the U-Net is trained on."""
    return images_uint8.unsqueeze(1).float().div(127.5).sub(1.0)
