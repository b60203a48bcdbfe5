"""scripts/gpu_session.py: the rule that picks the default guidance, and the bundle that carries a lease's results back.

The whole driver is dry-run on the CPU with `--tiny` (docs/gpu.md; minutes, so not part of the suite); these are its
two pieces whose mistakes would be silent: a wrong default shipped, or a model that does not come back whole.
"""

import importlib.util
import io
import json
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_session", REPO / "scripts" / "gpu_session.py")
gpu_session = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_session)


def row(sampler, steps, w, accuracy, judge_fid, interval=None, rescale=0.0):
    return {"sampler": sampler, "steps": steps, "guidance": w, "guidance_interval": interval, "guidance_rescale": rescale,
            "judge_accuracy": accuracy, "judge_fid": judge_fid, "setting": f"{sampler}:{steps}:{w}"}


def test_default_is_the_lowest_judge_fid_with_accuracy_at_least_095(tmp_path):
    rows = [row("ddpm", 100, 2, 0.99, 0.30),                    # another sampler: never the default
            row("unipc", 10, 1.25, 0.949, 0.40),                # best FID but accuracy below 0.95
            row("unipc", 10, 2, 0.97, 0.35, rescale=0.7),       # rescale rows are not candidates
            row("unipc", 10, 1.5, 0.956, 0.54, interval=[0.17, 0.88]),
            row("unipc", 10, 2, 0.975, 0.63, interval=[0.17, 0.88]),
            row("unipc", 20, 1.5, 0.99, 0.20)]                  # same sampler, other step count
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps({"rows": rows}))
    best = gpu_session.choose_default(sweep, "unipc", 10)
    assert (best["guidance"], best["guidance_interval"]) == (1.5, [0.17, 0.88])
    assert gpu_session.choose_default(sweep, "unipc", 10, min_accuracy=0.999) is None


def test_bundle_parts_reassemble_without_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_session, "PART_BYTES", 4096)  # force several parts
    args = SimpleNamespace(out=str(tmp_path / "out"), work=str(tmp_path / "work"), budget=60.0, config="configs/tiny.yaml")
    session = gpu_session.Session(args)
    model = session.work / "final"
    (model / "unet").mkdir(parents=True)
    weights = os.urandom(16384)  # incompressible, like weights
    (model / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(weights)
    (model / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (model / "checkpoints" / "checkpoint-10" / "optimizer.bin").write_bytes(b"x" * 10000)
    session.log("a line")
    session.bundle("bundle-model", [model])
    parts = sorted((session.out).glob("bundle-model.tgz.part-*"))
    assert len(parts) >= 2 and all(p.stat().st_size <= 4096 for p in parts)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz") as tar:
        names = tar.getnames()
        assert tar.extractfile("final/unet/diffusion_pytorch_model.safetensors").read() == weights
    assert "summary.json" in names and "session.log" in names
    assert not [n for n in names if "checkpoints" in n]
    session.bundle("bundle-model", [])  # a later, smaller bundle replaces every part of the earlier one
    assert len(list(session.out.glob("bundle-model.tgz.part-*"))) == 1
