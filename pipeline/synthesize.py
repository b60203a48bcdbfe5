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
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("arrow", "parquet", "imagefolder")
DEFAULT_FORMAT = "arrow"
DEFAULT_SHARD_SIZE = 250  # images per shard: what a kill can lose, and the most images held in memory at once
MANIFEST = "synthesize.json"
WORK_DIR = ".synthesize"  # bookkeeping of an unfinished run (hidden: `datasets` ignores it)
MANIFEST_VERSION = 1
TMP_PREFIX = ".tmp-"
SEED_RULE = "image i of class c uses the generator seed seed + 1,000,000 * c + i (pipeline.sampling.image_seed)"


class SynthesisError(ValueError):
    """A request that cannot be honoured (bad values, an output folder holding something else); the message says why."""


# ---------------------------------------------------------------------------------------------- plan and settings
@dataclass(frozen=True)
class Shard:
    """Images start .. start + count - 1 of class `class_id`, the number-th of `total` shards."""

    number: int
    total: int
    class_id: int
    start: int
    count: int

    @property
    def name(self) -> str:
        return f"train-{self.number:05d}-of-{self.total:05d}"


def plan_shards(class_ids: list[int], per_class: int, shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """The shards of a run: each class in request order, cut into chunks of at most `shard_size` images."""
    chunks = [(c, lo, min(shard_size, per_class - lo)) for c in class_ids for lo in range(0, per_class, shard_size)]
    return [Shard(k, len(chunks), c, lo, n) for k, (c, lo, n) in enumerate(chunks)]


def features(class_names: list[str], image_column: str = "image"):
    """The dataset's `datasets.Features` (image_column="file_name": the imagefolder metadata file's)."""
    import datasets

    image = datasets.Image() if image_column == "image" else datasets.Value("string")
    return datasets.Features({
        image_column: image,
        "label": datasets.ClassLabel(names=list(class_names)),
        "index": datasets.Value("int64"),
        "seed": datasets.Value("int64"),
        "sampler": datasets.Value("string"),
        "steps": datasets.Value("int32"),
        "guidance_scale": datasets.Value("float64"),
    })


def model_fingerprint(pipe) -> str:
    """sha256 of what decides the images: U-Net weights and config, scheduler config, class names."""
    import torch

    digest = hashlib.sha256()
    state = pipe.unet.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    for config in (pipe.unet.config, pipe.scheduler.config, {"class_names": pipe.class_names}):
        # not the private keys ("_name_or_path", "_diffusers_version", ...): where a model was loaded from does not count
        public = {k: v for k, v in dict(config).items() if not k.startswith("_")}
        digest.update(json.dumps(public, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _jsonable(value):
    return json.loads(json.dumps(value))


SAMPLING_KEYS = ("sampler", "num_inference_steps", "guidance_scale", "guidance_interval", "guidance_rescale")


def canonical_settings(settings: dict) -> dict:
    """A manifest's settings with its sampling part read by `SamplingSettings.from_json` and written back: the form
    today's runs write, for manifests of any age (so an older unfinished run still resumes)."""
    from .settings import SamplingSettings

    other = {k: v for k, v in settings.items() if k not in SAMPLING_KEYS}
    return {**other, **SamplingSettings.from_json(settings).to_json()}


# ---------------------------------------------------------------------------------------------- files
def _atomic_write_text(path: Path, text: str):
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _atomic_write_parquet(table, path: Path):
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    pq.write_table(table, tmp, row_group_size=100)  # small row groups: what the Hub's viewer wants for images
    os.replace(tmp, path)


def _remove_temporaries(folder: Path):
    """Half-written files a killed run left behind (never read: only renamed files count)."""
    if folder.is_dir():
        for path in folder.rglob(f"{TMP_PREFIX}*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "class"


def read_manifest(out_dir: str | os.PathLike) -> dict | None:
    """The manifest of a synthesize folder, or None when it has none."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(manifest, dict) and isinstance(manifest.get("settings"), dict)
    except (ValueError, AssertionError, UnicodeDecodeError):
        raise SynthesisError(f"{path} is not a synthesize manifest (invalid JSON or no settings); "
                             "give a new or empty folder") from None
    try:
        manifest["settings"] = canonical_settings(manifest["settings"])
    except ValueError as e:
        raise SynthesisError(f"{path}: {e}; give a new or empty folder") from None
    return manifest


@contextlib.contextmanager
def _quiet_datasets():
    """No "Generating train split" / "Saving the dataset" bars from `datasets` under our own progress bar."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


# ---------------------------------------------------------------------------------------------- the job
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
    summary: dict = field(default_factory=dict)

    @property
    def fmt(self) -> str:
        return self.settings["format"]

    @property
    def sampling(self):
        """The `SamplingSettings` every image of the run is made with."""
        from .settings import SamplingSettings

        return SamplingSettings.from_json(self.settings)

    @property
    def work(self) -> Path:
        return self.out_dir / WORK_DIR

    @property
    def num_images(self) -> int:
        return sum(s.count for s in self.shards)

    # ------------------------------------------------------------------ where a shard lives
    def shard_path(self, shard: Shard) -> Path:
        """The file whose existence means the shard is complete."""
        if self.fmt == "parquet":
            return self.out_dir / "data" / f"{shard.name}.parquet"
        return self.work / "shards" / f"{shard.name}.parquet"  # arrow: the rows; imagefolder: the PNGs' metadata

    def image_folder(self, class_id: int) -> str:
        names = self.settings["class_names"]
        return f"{class_id:0{len(str(len(names) - 1))}d}-{_slug(names[class_id])}"

    def done(self, shard: Shard) -> bool:
        return self.shard_path(shard).is_file()

    # ------------------------------------------------------------------ running
    def run(self, progress: bool = True) -> dict:
        """Generates the missing shards, assembles the dataset, writes the card; pushes when asked. Returns a summary."""
        if self.state == "complete":
            shutil.rmtree(self.work, ignore_errors=True)  # killed after completion, before the clean-up
            self.summary = {"out_dir": str(self.out_dir), "images": self.num_images, "generated": 0,
                            "already_complete": True, "format": self.fmt}
            if self.push_to_hub:
                self.summary["url"] = push_dataset(self.out_dir, self.push_to_hub, self.hub_token)
            return self.summary
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.state == "new":
            self._write_manifest(complete=False)
        for folder in (self.out_dir, self.work):
            _remove_temporaries(folder)
        todo = [s for s in self.shards if not self.done(s)]
        generated = self._generate(todo, progress)
        self._assemble()
        write_dataset_card(self.out_dir, self._manifest(complete=True))
        self._write_manifest(complete=True, stats=self._stats())
        shutil.rmtree(self.work, ignore_errors=True)
        self.summary = {"out_dir": str(self.out_dir), "images": self.num_images, "generated": generated,
                        "shards": len(self.shards), "shards_generated": len(todo), "already_complete": False,
                        "format": self.fmt, **self._manifest(True)["stats"]}
        if self.push_to_hub:
            self.summary["url"] = push_dataset(self.out_dir, self.push_to_hub, self.hub_token)
        return self.summary

    def _generate(self, todo: list[Shard], progress: bool) -> int:
        from tqdm.auto import tqdm

        from .sampling import generate

        remaining = sum(shard.count for shard in todo)
        bar = tqdm(total=self.num_images, initial=self.num_images - remaining, unit="img", desc="synthesize",
                   dynamic_ncols=True, disable=not progress)
        generated = 0
        try:
            for shard in todo:
                bar.set_postfix(shard=f"{shard.number + 1}/{shard.total}", refresh=False)
                shown = [0]

                def advance(done: int, _total: int, shown=shown):
                    bar.update(done - shown[0])
                    shown[0] = done

                samples = generate(self.pipe, [shard.class_id], shard.count, self.settings["seed"], self.batch_size,
                                   settings=self.sampling, start_index=shard.start, progress=advance)
                self._write_shard(shard, samples)
                generated += shard.count
        finally:
            bar.close()
        return generated

    def _rows(self, shard: Shard, samples) -> dict:
        s, n = self.sampling, shard.count
        return {"label": samples.class_ids, "index": list(range(shard.start, shard.start + n)), "seed": samples.seeds,
                "sampler": [s.sampler] * n, "steps": [s.steps] * n, "guidance_scale": [s.guidance] * n}

    def _write_shard(self, shard: Shard, samples):
        import pyarrow as pa
        import torch

        rows = self._rows(shard, samples)
        images = samples.pil()
        if self.fmt == "imagefolder":
            folder = self.out_dir / "train" / self.image_folder(shard.class_id)
            folder.mkdir(parents=True, exist_ok=True)
            names = []
            for image, index in zip(images, rows["index"]):
                path = folder / f"{index:06d}.png"
                tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
                image.save(tmp, format="PNG")
                os.replace(tmp, path)
                names.append(f"{folder.name}/{path.name}")
            feats = features(self.settings["class_names"], image_column="file_name")
            rows = {"file_name": names, **rows}
        else:
            feats = features(self.settings["class_names"])
            rows = {"image": images, **rows}
        _atomic_write_parquet(pa.Table.from_pydict(feats.encode_batch(rows), schema=feats.arrow_schema), self.shard_path(shard))
        timing = {"images": shard.count, "seconds": round(samples.seconds, 4), "torch_threads": torch.get_num_threads(),
                  "device": str(getattr(self.pipe, "device", "cpu"))}
        (self.work / "timings").mkdir(parents=True, exist_ok=True)
        _atomic_write_text(self.work / "timings" / f"{shard.name}.json", json.dumps(timing))

    def _assemble(self):
        """The dataset in its format from the complete shards (idempotent: a killed assembly is redone)."""
        missing = [s.name for s in self.shards if not self.done(s)]
        if missing:
            raise RuntimeError(f"shards {missing} are missing after generation")
        paths = [str(self.shard_path(s)) for s in self.shards]
        if self.fmt == "arrow":
            import datasets

            final = self.work / "final"
            shutil.rmtree(final, ignore_errors=True)
            with _quiet_datasets():
                dataset = datasets.Dataset.from_parquet(paths, features=features(self.settings["class_names"]),
                                                        cache_dir=str(self.work / "cache"))
                dataset.save_to_disk(str(final))
            del dataset
            for item in sorted(final.iterdir(), key=lambda p: p.name == "state.json"):  # state.json last
                os.replace(item, self.out_dir / item.name)
        elif self.fmt == "imagefolder":
            import pyarrow.parquet as pq

            schema = features(self.settings["class_names"], image_column="file_name").arrow_schema
            target = self.out_dir / "train" / "metadata.parquet"
            tmp = target.with_name(f"{TMP_PREFIX}{target.name}-{os.getpid()}")
            with pq.ParquetWriter(tmp, schema) as writer:
                for path in paths:
                    writer.write_table(pq.read_table(path, schema=schema))
            os.replace(tmp, target)

    # ------------------------------------------------------------------ manifest and stats
    def _manifest(self, complete: bool, stats: dict | None = None) -> dict:
        from importlib import metadata

        def version(package):
            try:
                return metadata.version(package)
            except metadata.PackageNotFoundError:
                return None

        existing = read_manifest(self.out_dir) if (self.out_dir / MANIFEST).is_file() else None
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "settings": self.settings,
            "model": self.model_name,
            "command": self.command,
            "num_images": self.num_images,
            "num_shards": len(self.shards),
            "seed_rule": SEED_RULE,
            "created": (existing or {}).get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": {p: version(p) for p in ("fashion-ddpm", "torch", "diffusers", "datasets", "huggingface_hub")},
            "complete": complete,
        }
        if existing is not None and existing.get("command") and not self.command:
            manifest["command"] = existing["command"]
        if stats is not None:
            manifest["stats"] = stats
        elif existing is not None and "stats" in existing:
            manifest["stats"] = existing["stats"]
        return manifest

    def _write_manifest(self, complete: bool, stats: dict | None = None):
        _atomic_write_text(self.out_dir / MANIFEST, json.dumps(self._manifest(complete, stats), indent=2) + "\n")

    def _stats(self) -> dict:
        """Sampling time over the shards with a recorded timing (all of them unless a kill fell between files)."""
        timings = []
        for shard in self.shards:
            path = self.work / "timings" / f"{shard.name}.json"
            with contextlib.suppress(OSError, ValueError):
                timings.append(json.loads(path.read_text()))
        images = sum(t["images"] for t in timings)
        seconds = sum(t["seconds"] for t in timings)
        return {"images": self.num_images, "timed_images": images, "sampling_seconds": round(seconds, 3),
                "seconds_per_image": round(seconds / images, 6) if images else None,
                "torch_threads": sorted({t["torch_threads"] for t in timings}),
                "devices": sorted({t["device"] for t in timings}),
                "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _describe_difference(old: dict, new: dict) -> str:
    def show(key, value):
        return f"{value[:12]}..." if key == "model_sha256" and isinstance(value, str) else repr(value)

    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k}: {show(k, old.get(k))} there, {show(k, new.get(k))} now" for k in keys if old.get(k) != new.get(k))


def check_out_dir(out_dir: Path, settings: dict) -> str:
    """"new" (absent or empty), "resume" (an unfinished run of the same settings) or "complete" (a finished one).

    Raises:
        SynthesisError: a file, or a non-empty folder that is not a synthesize run of exactly these settings.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthesisError(f"output folder {out_dir} is a file; give a folder")
    if not out_dir.exists() or not [p for p in out_dir.iterdir() if not p.name.startswith(TMP_PREFIX)]:
        return "new"
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise SynthesisError(f"output folder {out_dir} is not empty and holds no synthesize run ({MANIFEST}); "
                             "give a new or empty folder")
    if manifest["settings"] != settings:
        raise SynthesisError(f"output folder {out_dir} holds a synthesize run with other settings "
                             f"({_describe_difference(manifest['settings'], settings)}); rerun with its settings to "
                             "resume it, or give a new or empty folder")
    return "complete" if manifest.get("complete") else "resume"


def prepare(pipe, out_dir: str | os.PathLike, per_class: int, labels=None, seed: int = 0, *, fmt: str = DEFAULT_FORMAT,
            shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = 100,
            model_name: str | None = None, command: str | None = None, push_to_hub: str | None = None,
            hub_token: str | None = None, settings=None, **overrides) -> Synthesis:
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
        model_name: how the dataset card names the model (a folder or Hub id).
        command: the command line, for the card and the manifest.
        push_to_hub: user/name of a Hub dataset repo to upload to at the end (checked now).

    Raises:
        ValueError: (SynthesisError, HubAccessError, the pipeline's own) naming the bad value.
    """
    for name, value, low in (("per_class", per_class, 1), ("shard_size", shard_size, 1), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SynthesisError(f"{name} must be an int >= {low}, got {value!r}")
    from .sampling import SEED_STRIDE

    if per_class > SEED_STRIDE:
        raise SynthesisError(f"per_class must be <= {SEED_STRIDE:,} (the seed rule's images per class), got {per_class:,}")
    if fmt not in FORMATS:
        raise SynthesisError(f"format {fmt!r} is not one of {list(FORMATS)}")
    class_ids = pipe.resolve_class_ids(labels)
    if len(set(class_ids)) != len(class_ids):
        raise SynthesisError(f"classes {labels!r} name a class twice; name each class once")
    from .sampling import resolve_settings

    sampling = resolve_settings(pipe, settings, overrides).check(pipe)
    settings = _jsonable({
        "format": fmt,
        "model_sha256": model_fingerprint(pipe),
        "class_ids": class_ids,
        "class_names": list(pipe.class_names),
        "per_class": per_class,
        "seed": seed,
        "shard_size": shard_size,
        **sampling.to_json(),
    })
    out = Path(out_dir)
    state = check_out_dir(out, settings)
    if push_to_hub:
        from .hub import check_hub_access

        check_hub_access(push_to_hub, hub_token, flag="--push-to-hub")
    return Synthesis(pipe, out, settings, plan_shards(class_ids, per_class, shard_size), state, batch_size,
                     model_name, command, push_to_hub, hub_token)


def synthesize(pipe, out_dir: str | os.PathLike, per_class: int, labels=None, seed: int = 0, *, progress: bool = True,
               **kwargs) -> dict:
    """`prepare(...).run()`: writes (or completes) a synthetic dataset; returns the run's summary."""
    return prepare(pipe, out_dir, per_class, labels, seed, **kwargs).run(progress=progress)


# ---------------------------------------------------------------------------------------------- reading and sharing
def load_synthetic(out_dir: str | os.PathLike):
    """The `datasets.Dataset` of a finished synthesize folder, whatever its format."""
    import datasets

    out = Path(out_dir)
    manifest = read_manifest(out)
    if manifest is None or not manifest.get("complete"):
        raise SynthesisError(f"{out} holds no finished synthesize run; run (or rerun) `fashion-ddpm synthesize` on it")
    fmt = manifest["settings"]["format"]
    with _quiet_datasets():
        if fmt == "arrow":
            return datasets.load_from_disk(str(out))
        if fmt == "parquet":
            files = sorted(str(p) for p in (out / "data").glob("train-*.parquet"))
            return datasets.load_dataset("parquet", data_files=files, split="train", download_mode="force_redownload")
        # afresh (force_redownload): `datasets` keys its cache on the path, which a rerun into a new folder may reuse
        return datasets.load_dataset("imagefolder", data_dir=str(out), split="train", download_mode="force_redownload")


def size_category(n: int) -> str:
    """The Hub's size_categories bucket of n rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


CARD_TEMPLATE = """---
{{ card_data }}
---

# {{ pretty_name }}

{{ num_images }} synthetic {{ height }}×{{ width }} greyscale images, {{ per_class }} per class for {{ num_classes }} classes,
generated by the class-conditional diffusion model **{{ model }}** with `fashion-ddpm synthesize`. Not photographs:
every image is a sample of the model.

## Generation

| setting | value |
|---|---|
| model | `{{ model }}` (weights sha256 `{{ model_sha256 }}`) |
| sampling | {{ settings }} |
| seed | {{ seed }}: {{ seed_rule }} |
| classes | {{ classes }} |
| format | {{ format }} |

Command:

```bash
{{ command }}
```

The same command on the same folder resumes an interrupted run; the same command anywhere makes the same images.
Regenerate image `i` of class `c` alone (it is row `index == i` of that class):

```python
from pipeline import SamplingSettings, generate, load_pipeline
pipe = load_pipeline("{{ model }}")
settings = SamplingSettings.parse("{{ label }}")
image = generate(pipe, [c], per_label=1, seed={{ seed }}, start_index=i, settings=settings).pil()[0]
```

## Use

```python
{{ load_code }}
```

Columns: `image` (PNG, mode "L"), `label` (`ClassLabel`, below), `index` (the image's number within its class),
`seed` (its generator seed), `sampler`, `steps`, `guidance_scale`. Label ids and names (for a Fashion-MNIST model
those of zalando-datasets/fashion_mnist, so the set is a drop-in for it):

{{ class_names }}

Train a diffusion model on it with fashion-ddpm: `python train_conditional.py --config configs/cpu.yaml dataset=DIR`,
or mix it into the real data with `mix_dataset=DIR mix_ratio=0.25` (the project's docs/synthetic.md).

## Limitations

The images inherit the model's biases and errors: with strong guidance they are more prototypical and less diverse
than real ones, and some do not look like their label. Measure before you rely on them (the project's
benchmarks/synthetic_data.py trains a classifier on such a set and tests it on the real test set).
"""

LOAD_CODE = {
    "arrow": 'from datasets import load_from_disk\nds = load_from_disk("DIR")',
    "parquet": 'from datasets import load_dataset\nds = load_dataset("parquet", data_files="DIR/data/*.parquet", split="train")'
               '\n# or load_dataset("DIR", split="train"); from the Hub: load_dataset("user/name", split="train")',
    "imagefolder": 'from datasets import load_dataset\nds = load_dataset("imagefolder", data_dir="DIR", split="train")',
}


def write_dataset_card(out_dir: Path, manifest: dict) -> Path:
    """README.md with the Hub's YAML header (huggingface_hub.DatasetCard), written atomically."""
    from huggingface_hub import DatasetCard, DatasetCardData

    s = manifest["settings"]
    n = manifest["num_images"]
    extra = {}
    if s["format"] == "parquet":
        extra["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    card_data = DatasetCardData(license="mit", task_categories=["image-classification"], size_categories=[size_category(n)],
                                pretty_name="Synthetic Fashion-MNIST (fashion-ddpm)",
                                tags=["synthetic", "diffusers", "fashion-ddpm", "fashion-mnist", "image"], **extra)
    from .settings import SamplingSettings

    sampling = SamplingSettings.from_json(s)
    names = s["class_names"]
    card = DatasetCard.from_template(
        card_data, template_str=CARD_TEMPLATE, pretty_name="Synthetic Fashion-MNIST (fashion-ddpm)", num_images=f"{n:,}",
        height=28, width=28, per_class=f"{s['per_class']:,}", num_classes=len(s["class_ids"]), model=manifest.get("model") or "?",
        model_sha256=s["model_sha256"][:16], settings=sampling.describe(), label=sampling.label(), seed=s["seed"],
        seed_rule=SEED_RULE,
        classes=", ".join(f"{c} {names[c]}" for c in s["class_ids"]), format=s["format"],
        command=manifest.get("command") or "(called from Python: pipeline.synthesize.synthesize)",
        load_code=LOAD_CODE[s["format"]], class_names="\n".join(f"- {i}: {name}" for i, name in enumerate(names)),
    )
    path = Path(out_dir) / "README.md"
    _atomic_write_text(path, str(card))
    return path


def push_dataset(out_dir: str | os.PathLike, repo_id: str, token: str | None = None) -> str:
    """Uploads a finished synthesize folder to a Hub dataset repo: the card first, then the data (`Dataset.push_to_hub`
    adds its dataset_info to the card's YAML). Returns the repo's URL."""
    from huggingface_hub import DatasetCard, HfApi

    out = Path(out_dir)
    dataset = load_synthetic(out)
    HfApi(token=token).create_repo(repo_id, repo_type="dataset", exist_ok=True)
    DatasetCard((out / "README.md").read_text(encoding="utf-8")).push_to_hub(
        repo_id, token=token, repo_type="dataset", commit_message="Dataset card (fashion-ddpm synthesize)")
    dataset.push_to_hub(repo_id, split="train", token=token, commit_message="Upload synthetic images (fashion-ddpm synthesize)")
    return f"https://huggingface.co/datasets/{repo_id}"
