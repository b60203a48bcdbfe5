"""save_pretrained -> from_pretrained round trips, including a fresh process that never imports this package."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from conftest import gen
from pipeline import FashionDDPMPipeline

LOADER = r"""
import sys, json, numpy as np, torch
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
images = pipe(class_labels=["Sneaker", "bag"], num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="np").images
np.save(sys.argv[2], images)
print(json.dumps({"class": type(pipe).__name__, "module": type(pipe).__module__,
                  "imported_project": any(m == "pipeline" or m.startswith("pipeline.") for m in sys.modules)}))
"""


def test_saved_folder_layout(tiny_saved):
    files = {os.path.relpath(os.path.join(d, f), tiny_saved) for d, _, fs in os.walk(tiny_saved) for f in fs}
    assert "unet/diffusion_pytorch_model.safetensors" in files
    assert "pipeline_fashion_ddpm.py" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".ckpt")) for f in files)
    index = json.loads((tiny_saved / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_fashion_ddpm", "FashionDDPMPipeline"]
    assert index["id2label"]["7"] == "Sneaker"
    assert not any(isinstance(v, list) and v and isinstance(v[0], str) for k, v in index.items()
                   if k not in ("_class_name", "unet", "scheduler", "condition_encoder"))  # the Hub reads those as components


@pytest.mark.slow  # subprocess
def test_fresh_process_loads_with_trust_remote_code(tiny_saved, tmp_path):
    expected = FashionDDPMPipeline.from_pretrained(tiny_saved)
    expected.set_progress_bar_config(disable=True)
    want = expected(class_labels=["Sneaker", "bag"], num_inference_steps=3, generator=gen(0), output_type="np").images
    # Run from an empty folder with a PYTHONPATH that cannot see the repo, so only the saved code file is used.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", LOADER, str(tiny_saved), str(tmp_path / "out.npy")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info == {"class": "FashionDDPMPipeline", "module": info["module"], "imported_project": False}
    assert info["module"].startswith("diffusers_modules")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)


def test_class_from_pretrained_needs_no_remote_code(tiny_saved):
    pipe = FashionDDPMPipeline.from_pretrained(tiny_saved)
    assert type(pipe) is FashionDDPMPipeline
    assert pipe.unet.config.num_class_embeds == 11  # the class embedding survived


def test_diffusion_pipeline_refuses_without_trust(tiny_saved):
    import pytest

    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(tiny_saved)


def test_weights_identical_after_round_trip(tiny_saved, tmp_path):
    pipe = FashionDDPMPipeline.from_pretrained(tiny_saved)
    pipe.save_pretrained(tmp_path / "again")
    again = FashionDDPMPipeline.from_pretrained(tmp_path / "again")
    for (name, a), (_, b) in zip(pipe.unet.state_dict().items(), again.unet.state_dict().items()):
        assert torch.equal(a, b), name
