"""One writer per output format: where a shard lives, how a shard is written, how the shards become the dataset, how
the finished folder is loaded, and what the dataset card says about it. Nothing else branches on the format.

Every shard is a parquet file of the dataset's rows, written under a temporary name and renamed, so its existence means
it is complete. Torch- and datasets-free at import.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import ClassVar

from ..io import atomic_path, atomic_save_image, move_into
from .files import WORK_DIR, atomic_write_parquet, quiet_datasets
from .plan import Shard, features


class Writer:
    """A synthesize folder in one format. Subclasses set `fmt` and `load_code` and override what differs."""

    fmt: ClassVar[str]
    load_code: ClassVar[str]  # the dataset card's "Use" snippet (DIR: the folder)
    card_yaml: ClassVar[dict] = {}  # extra keys of the dataset card's YAML header
    image_column: ClassVar[str] = "image"  # the shards' image column ("file_name": the names of PNG files)

    def __init__(self, out_dir: str | os.PathLike, class_names: list[str], style_attributes=()):
        self.out_dir = Path(out_dir)
        self.class_names = list(class_names)
        self.style_attributes = list(style_attributes)
        self.work = self.out_dir / WORK_DIR

    def shard_path(self, shard: Shard) -> Path:
        """The file whose existence means the shard is complete."""
        return self.work / "shards" / f"{shard.name}.parquet"

    def write_shard(self, shard: Shard, images: list, rows: dict):
        """Writes a shard: its PIL images and its other columns (label, index, seed, ...); shard_path appears last."""
        import pyarrow as pa

        feats = self.features(self.image_column)
        columns = {self.image_column: self.image_cells(shard, images, rows["index"]), **rows}
        atomic_write_parquet(pa.Table.from_pydict(feats.encode_batch(columns), schema=feats.arrow_schema),
                             self.shard_path(shard))

    def features(self, image_column: str = "image"):
        return features(self.class_names, image_column, self.style_attributes)

    def image_cells(self, shard: Shard, images: list, indices: list[int]) -> list:
        """The shard's image column: the images themselves."""
        return images

    def assemble(self, paths: list[str]):
        """The dataset from the complete shards `paths` (idempotent: a killed assembly is redone). Here: the shards."""

    def load(self):
        """The finished folder's `datasets.Dataset` (afresh where `datasets` would key a cache on the path)."""
        raise NotImplementedError


class ArrowWriter(Writer):
    """Dataset.save_to_disk in DIR (load_from_disk(DIR)); the shards are bookkeeping under .synthesize/."""

    fmt = "arrow"
    load_code = 'from datasets import load_from_disk\nds = load_from_disk("DIR")'

    def assemble(self, paths: list[str]):
        import datasets

        final = self.work / "final"
        shutil.rmtree(final, ignore_errors=True)
        with quiet_datasets():
            dataset = datasets.Dataset.from_parquet(paths, features=self.features(),
                                                    cache_dir=str(self.work / "cache"))
            dataset.save_to_disk(str(final))
        del dataset
        move_into(final, self.out_dir, last="state.json")

    def load(self):
        import datasets

        return datasets.load_from_disk(str(self.out_dir))


class ParquetWriter(Writer):
    """data/train-*-of-*.parquet: the shards themselves are the dataset."""

    fmt = "parquet"
    load_code = ('from datasets import load_dataset\nds = load_dataset("parquet", data_files="DIR/data/*.parquet", '
                 'split="train")\n# or load_dataset("DIR", split="train"); from the Hub: load_dataset("user/name", '
                 'split="train")')
    card_yaml = {"configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]}

    def shard_path(self, shard: Shard) -> Path:
        return self.out_dir / "data" / f"{shard.name}.parquet"

    def load(self):
        import datasets

        files = sorted(str(p) for p in (self.out_dir / "data").glob("train-*.parquet"))
        return datasets.load_dataset("parquet", data_files=files, split="train", download_mode="force_redownload")


class ImageFolderWriter(Writer):
    """train/<id>-<class>/<index>.png and train/metadata.parquet; a shard is its PNG files plus their metadata rows
    (under .synthesize/), the PNGs written first."""

    fmt = "imagefolder"
    load_code = 'from datasets import load_dataset\nds = load_dataset("imagefolder", data_dir="DIR", split="train")'
    image_column = "file_name"

    def class_folder(self, class_id: int) -> str:
        """<id>-<class>: the id zero-padded to the width of the largest one, the class name as a slug."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.class_names[class_id].lower()).strip("-") or "class"
        return f"{class_id:0{len(str(len(self.class_names) - 1))}d}-{slug}"

    def image_cells(self, shard: Shard, images: list, indices: list[int]) -> list[str]:
        folder = self.out_dir / "train" / self.class_folder(shard.class_id)
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for image, index in zip(images, indices):
            path = folder / f"{index:06d}.png"
            atomic_save_image(image, path)
            names.append(f"{folder.name}/{path.name}")
        return names

    def assemble(self, paths: list[str]):
        import pyarrow.parquet as pq

        schema = self.features(self.image_column).arrow_schema
        target = self.out_dir / "train" / "metadata.parquet"
        with atomic_path(target) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            for path in paths:
                writer.write_table(pq.read_table(path, schema=schema))

    def load(self):
        import datasets

        # afresh (force_redownload): `datasets` keys its cache on the path, which a rerun into a new folder may reuse
        return datasets.load_dataset("imagefolder", data_dir=str(self.out_dir), split="train",
                                     download_mode="force_redownload")


WRITERS: dict[str, type[Writer]] = {w.fmt: w for w in (ArrowWriter, ParquetWriter, ImageFolderWriter)}
FORMATS = tuple(WRITERS)
DEFAULT_FORMAT = "arrow"


def writer_for(out_dir: str | os.PathLike, settings: dict) -> Writer:
    """The writer of a run's format (settings: a manifest's)."""
    return WRITERS[settings["format"]](out_dir, settings["class_names"], settings.get("style_attributes", ()))
