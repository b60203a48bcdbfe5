"""The job: `prepare` checks a request, `Synthesis.run` generates the missing shards and finishes the folder."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..checks import check_int
from ..io import remove_temporaries
from ..settings import SamplingSettings
from .card import write_dataset_card
from .files import WORK_DIR
from .manifest import build_manifest, check_out_dir, timing_stats, write_manifest, write_timing
from .plan import DEFAULT_SHARD_SIZE, Shard, SynthesisError, plan_shards, run_settings
from .processes import Processes
from .reading import push_dataset
from .writers import DEFAULT_FORMAT, FORMATS, Writer, writer_for


@dataclass
class Synthesis:
    """A checked request (from `prepare`); `run()` writes or completes the dataset."""

    pipe: object
    out_dir: Path
    settings: dict  # what the images and the layout depend on; equal settings = resumable
    shards: list[Shard]
    state: str  # "new", "resume" or "complete"
    batch_size: int = 100
    model_name: str | None = None
    command: str | None = None
    push_to_hub: str | None = None
    hub_token: str | None = None
    processes: Processes = field(default_factory=Processes)  # this one's share of a multi-process launch
    summary: dict = field(default_factory=dict)

    @property
    def fmt(self) -> str:
        return self.settings["format"]

    @cached_property
    def writer(self) -> Writer:
        """How this run's format lays out the folder."""
        return writer_for(self.out_dir, self.settings)

    @property
    def sampling(self) -> SamplingSettings:
        """The `SamplingSettings` every image of the run is made with."""
        return SamplingSettings.from_json(self.settings)

    @property
    def work(self) -> Path:
        return self.out_dir / WORK_DIR

    @property
    def num_images(self) -> int:
        return sum(s.count for s in self.shards)

    def shard_path(self, shard: Shard) -> Path:
        """The file whose existence means the shard is complete."""
        return self.writer.shard_path(shard)

    def done(self, shard: Shard) -> bool:
        return self.shard_path(shard).is_file()

    # ------------------------------------------------------------------ running
    def run(self, progress: bool = True) -> dict:
        """Generates the missing shards, assembles the dataset, writes the card; pushes when asked. Returns a summary."""
        if self.state == "complete":
            if self.processes.is_main:
                shutil.rmtree(self.work, ignore_errors=True)  # killed after completion, before the clean-up
            self.summary = {"out_dir": str(self.out_dir), "images": self.num_images, "generated": 0,
                            "already_complete": True, "format": self.fmt}
        else:
            self._complete(progress)
        if self.push_to_hub and self.processes.is_main:
            self.summary["url"] = push_dataset(self.out_dir, self.push_to_hub, self.hub_token)
        return self.summary

    def _complete(self, progress: bool):
        processes = self.processes
        if processes.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if self.state == "new":
                write_manifest(self.out_dir, self._manifest(complete=False))
            for folder in (self.out_dir, self.work):
                remove_temporaries(folder)
        processes.wait()  # the folder is set up before any process writes a shard
        todo = [s for s in self.shards if not self.done(s)]
        mine = processes.mine(self.shards)
        self._generate([s for s in mine if not self.done(s)], progress and processes.is_main, sum(s.count for s in mine))
        processes.wait()  # every shard is written before process 0 assembles them
        generated = sum(s.count for s in todo)
        if not processes.is_main:
            self.summary = {"out_dir": str(self.out_dir), "images": self.num_images, "generated": generated,
                            "process": processes.index, "processes": processes.count, "already_complete": False,
                            "format": self.fmt}
            return
        self._assemble()
        write_dataset_card(self.out_dir, self._manifest(complete=True))
        write_manifest(self.out_dir, self._manifest(complete=True, stats=timing_stats(self.work, self.shards,
                                                                                       self.num_images)))
        shutil.rmtree(self.work, ignore_errors=True)
        self.summary = {"out_dir": str(self.out_dir), "images": self.num_images, "generated": generated,
                        "shards": len(self.shards), "shards_generated": len(todo), "already_complete": False,
                        "format": self.fmt, "process": 0, "processes": processes.count,
                        **self._manifest(True)["stats"]}

    def _generate(self, todo: list[Shard], progress: bool, share: int) -> int:
        """Makes and writes the `todo` shards; the bar counts this process's `share` of the images."""
        from tqdm.auto import tqdm

        from ..sampling import generate

        remaining = sum(shard.count for shard in todo)
        bar = tqdm(total=share, initial=share - remaining, unit="img", desc="synthesize", dynamic_ncols=True,
                   disable=not progress)
        generated = 0
        try:
            for shard in todo:
                bar.set_postfix(shard=f"{shard.number + 1}/{shard.total}", refresh=False)
                shown = [0]

                def advance(done: int, _total: int, shown=shown):
                    bar.update(done - shown[0])
                    shown[0] = done

                samples = generate(self.pipe, [shard.class_id], shard.count, self.settings["seed"], self.batch_size,
                                   settings=self.sampling, start_index=shard.start, progress=advance,
                                   style=self.settings.get("style") or None)
                self._write_shard(shard, samples)
                generated += shard.count
        finally:
            bar.close()
        return generated

    def _write_shard(self, shard: Shard, samples):
        import torch

        s, n = self.sampling, shard.count
        rows = {"label": samples.class_ids, "index": list(range(shard.start, shard.start + n)), "seed": samples.seeds,
                "sampler": [s.sampler] * n, "steps": [s.steps] * n, "guidance_scale": [s.guidance] * n,
                **self._style_columns(samples)}
        self.writer.write_shard(shard, samples.pil(), rows)
        write_timing(self.work, shard, {"images": n, "seconds": round(samples.seconds, 4),
                                        "torch_threads": torch.get_num_threads(),
                                        "device": str(getattr(self.pipe, "device", "cpu"))})

    def _style_columns(self, samples) -> dict:
        """requested_<a> and measured_<a> (percentiles within the class) of a style model's images."""
        attributes = self.settings.get("style_attributes")
        if not attributes:
            return {}
        import numpy as np

        from ..style.attributes import measure

        encoder, n = self.pipe.condition_encoder, len(samples)
        measured = measure((samples.images[:, 0].numpy() * 255).round().astype(np.uint8))
        requested = self.settings["style"]
        columns = {}
        for a in attributes:
            columns[f"requested_{a}"] = [requested.get(a, float("nan"))] * n
            columns[f"measured_{a}"] = encoder.percentiles(a, samples.class_ids, measured[a]).tolist()
        return columns

    def _assemble(self):
        """The dataset in its format from the complete shards (idempotent: a killed assembly is redone)."""
        missing = [s.name for s in self.shards if not self.done(s)]
        if missing:
            raise RuntimeError(f"shards {missing} are missing after generation")
        self.writer.assemble([str(self.shard_path(s)) for s in self.shards])

    def _manifest(self, complete: bool, stats: dict | None = None) -> dict:
        return build_manifest(self.out_dir, self.settings, model=self.model_name, command=self.command,
                              num_images=self.num_images, num_shards=len(self.shards), complete=complete, stats=stats)


def prepare(pipe, out_dir: str | os.PathLike, per_class: int, labels=None, seed: int = 0, *, fmt: str = DEFAULT_FORMAT,
            shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = 100,
            model_name: str | None = None, command: str | None = None, push_to_hub: str | None = None,
            hub_token: str | None = None, settings=None, style=None, processes: Processes | None = None,
            **overrides) -> Synthesis:
    """Checks a synthesize request without writing anything or running the U-Net.

    Args:
        pipe: a `FashionDDPMPipeline`.
        out_dir: a new or empty folder, or the folder of an unfinished (or finished) run of the same settings.
        per_class: images per class (1 .. 1,000,000).
        labels: class ids or names (None: every class of the model), as `generate` takes them.
        seed: image i of class c uses `image_seed(seed, c, i)`.
        fmt: "arrow" (save_to_disk), "parquet" or "imagefolder".
        shard_size: images per shard (what a kill can lose).
        batch_size: images per pipeline call (does not change the images).
        settings / **overrides: how to sample, as for `pipeline.sampling.generate` (`SamplingSettings`, or its fields;
            unset ones take the model's defaults).
        style: a style model's request for every image (as for `generate`); the set records it and each image's
            measured attributes.
        model_name: how the dataset card names the model (a folder or Hub id).
        command: the command line, for the card and the manifest.
        push_to_hub: user/name of a Hub dataset repo to upload to at the end (checked now).
        processes: this process's place in a launch of several (None: from the environment, `Processes`); each
            makes every N-th shard and process 0 assembles, so the set is the one a single process writes.

    Raises:
        ValueError: (SynthesisError, HubAccessError, the pipeline's own) naming the bad value.
    """
    for name, value, low in (("per_class", per_class, 1), ("shard_size", shard_size, 1), ("batch_size", batch_size, 1)):
        check_int(value, name, low, SynthesisError)
    from ..sampling import SEED_STRIDE, resolve_settings

    if per_class > SEED_STRIDE:
        raise SynthesisError(f"per_class must be <= {SEED_STRIDE:,} (the seed rule's images per class), got {per_class:,}")
    if fmt not in FORMATS:
        raise SynthesisError(f"format {fmt!r} is not one of {list(FORMATS)}")
    class_ids = pipe.resolve_class_ids(labels)
    if len(set(class_ids)) != len(class_ids):
        raise SynthesisError(f"classes {labels!r} name a class twice; name each class once")
    sampling = resolve_settings(pipe, settings, overrides).check(pipe)
    settings = run_settings(pipe, fmt, class_ids, per_class, seed, shard_size, sampling, pipe.parse_style(style))
    out = Path(out_dir)
    state = check_out_dir(out, settings)
    if push_to_hub:
        from ..hub import check_hub_access

        check_hub_access(push_to_hub, hub_token, flag="--push-to-hub")
    return Synthesis(pipe, out, settings, plan_shards(class_ids, per_class, shard_size), state, batch_size,
                     model_name, command, push_to_hub, hub_token, processes or Processes.from_environment())


def synthesize(pipe, out_dir: str | os.PathLike, per_class: int, labels=None, seed: int = 0, *, progress: bool = True,
               **kwargs) -> dict:
    """`prepare(...).run()`: writes (or completes) a synthetic dataset; returns the run's summary."""
    return prepare(pipe, out_dir, per_class, labels, seed, **kwargs).run(progress=progress)
