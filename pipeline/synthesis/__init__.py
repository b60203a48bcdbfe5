"""Synthetic labelled datasets: N generated images per class, written as a `datasets` dataset with a dataset card.

The library behind `fashion-ddpm synthesize` (the command only parses arguments). Images come only from
`pipeline.sampling.generate`, so image i of class c is the image `generate(pipe, [c], 1, seed, start_index=i)` makes,
and each row stores the seed it was drawn from.

Kill-safe and resumable. `prepare` checks everything (classes, counts, format, sampler settings, the output folder,
Hub access) before anything is written; `Synthesis.run` then

1. writes the manifest `synthesize.json` (the settings, the model's fingerprint, the command) into the new folder;
2. generates the images class by class in shards of at most `shard_size` images, each shard written to a temporary
   file and renamed (os.replace), so a shard is either complete or absent;
3. assembles the dataset in the requested format, writes the dataset card README.md, marks the manifest complete and
   removes its bookkeeping folder `.synthesize/`.

Running the same command on the same folder again (after a SIGKILL, a crash or Ctrl-C) generates only the missing
shards and ends with the dataset an uninterrupted run writes; a folder that holds anything else is refused.

Layout of DIR (shard k of K is named train-{k:05d}-of-{K:05d}; classes in request order, each split into chunks):

    synthesize.json                        settings + fingerprint + command (+ stats once complete)
    README.md                              dataset card (Hub YAML: task, size, license, model, settings)
    arrow:        data-*.arrow, dataset_info.json, state.json          (Dataset.save_to_disk; load_from_disk(DIR))
    parquet:      data/train-*-of-*.parquet                            (the shards themselves)
    imagefolder:  train/<id>-<class>/<index>.png, train/metadata.parquet
    .synthesize/  shards (arrow, imagefolder), per-shard timings, caches: only while the run is unfinished

Columns: image (PNG, 28×28, mode "L"), label (ClassLabel with the model's class names: for the Fashion-MNIST models a
drop-in for zalando-datasets/fashion_mnist), index (i: the image's number within its class), seed (its generator
seed, `image_seed(seed, label, index)`), sampler, steps, guidance_scale.

Modules (torch- and datasets-free at import, so the command's --help and argument errors stay light):

    plan.py       shards, the run's settings, the model's fingerprint, the columns (`features`)
    files.py      atomic writes (temporary name + os.replace), the clean-up of a killed run's temporaries
    manifest.py   synthesize.json, per-shard timings and stats, which folders a run may write into (`check_out_dir`)
    writers.py    one writer per format: shard location, shard writing, assembly, loading, the card's snippet/YAML
    card.py       README.md from dataset_card_template.md
    job.py        `prepare`, `Synthesis`, `synthesize`
    processes.py  `Processes`: this process's share of a multi-process launch (every N-th shard; process 0 assembles)
    reading.py    `load_synthetic`, `push_dataset`
"""

from __future__ import annotations

from ..io import TMP_PREFIX
from .card import size_category, write_dataset_card
from .files import WORK_DIR
from .job import Synthesis, prepare, synthesize
from .manifest import MANIFEST, MANIFEST_VERSION, check_out_dir, read_manifest
from .plan import (
    DEFAULT_SHARD_SIZE,
    SEED_RULE,
    Shard,
    SynthesisError,
    canonical_settings,
    features,
    model_fingerprint,
    plan_shards,
)
from .reading import load_synthetic, push_dataset
from .writers import DEFAULT_FORMAT, FORMATS, WRITERS, ArrowWriter, ImageFolderWriter, ParquetWriter, Writer

__all__ = [
    "DEFAULT_FORMAT", "DEFAULT_SHARD_SIZE", "FORMATS", "MANIFEST", "MANIFEST_VERSION", "SEED_RULE", "TMP_PREFIX",
    "WORK_DIR", "WRITERS", "ArrowWriter", "ImageFolderWriter", "ParquetWriter", "Shard", "Synthesis", "SynthesisError",
    "Writer", "canonical_settings", "check_out_dir", "features", "load_synthetic", "model_fingerprint", "plan_shards",
    "prepare", "push_dataset", "read_manifest", "size_category", "synthesize", "write_dataset_card",
]
