"""The trained models shipped in pretrained/ (the default fashion-ddpm-gpu, the faster fashion-ddpm-cpu and the style
model fashion-ddpm-style): each loads, and the judge recognises what it makes.

The bound: with their defaults (UniPC 10 steps, guidance for t/T in [0.17, 0.88]: w = 1.5 and w = 2) the models reached
judge accuracy 0.955 (fashion-ddpm-gpu, benchmarks/results/evaluate_gpu_default/metrics.md) and 0.960
(fashion-ddpm-cpu, benchmarks/results/evaluate_default/metrics.md) on 1000 samples. Here 2 images per class with fixed
seeds must reach >= 0.7 (14 of 20): chance is 0.1, and at a true rate of 0.95 the probability of 13 or fewer hits out
of 20 is below 1e-4, while a broken export, a shuffled class mapping or a silently changed default (w = 1 gave 0.88
and 0.90) falls far below it.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import FashionDDPMPipeline
from pipeline.evaluation.judge import FashionJudge
from pipeline.models import DEFAULT_MODEL

SHIPPED = sorted(p.parent for p in (DEFAULT_MODEL.parent).glob("*/model_index.json"))
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (DEFAULT_MODEL / "model_index.json").is_file(),
                                reason=f"no shipped model at {DEFAULT_MODEL}"),
              pytest.mark.parametrize("model", SHIPPED, ids=[p.name for p in SHIPPED])]


def test_judge_recognises_shipped_model_samples(model):
    pipe = FashionDDPMPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    labels = np.repeat(np.arange(10), 2)
    images = pipe(class_labels=labels.tolist(), generator=[torch.Generator().manual_seed(i) for i in range(20)],
                  output_type="pt").images
    predictions, _ = FashionJudge.load().predict(images)
    accuracy = float((predictions == labels).mean())
    assert accuracy >= 0.7, f"judge accuracy {accuracy:.2f} on the shipped model's samples; predictions {predictions.tolist()}"


def test_shipped_model_loads_through_diffusers_remote_code(tmp_path, model):
    code = ("import sys; from diffusers import DiffusionPipeline; "
            "p = DiffusionPipeline.from_pretrained(sys.argv[1], trust_remote_code=True); "
            "print(type(p).__name__, p.class_names[7], p(class_labels='Sneaker', num_inference_steps=2, output_type='np').images.shape)")
    result = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.stdout.split() == ["FashionDDPMPipeline", "Sneaker", "(1,", "28,", "28,", "1)"], result.stderr[-2000:]


def test_shipped_model_card_has_measured_numbers(model):
    card = (model / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: diffusers" in card.split("---")[1]
    assert "fashion-ddpm evaluate" in card and "floor" in card and "Not measured yet" not in card
    assert (model / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(Path(model).rglob("*.bin"))


# The code copied beside the weights is the record of how each model sampled when it was saved, never edited since:
# tests/test_committed_copies.py checks that this package gives the same images from the same weights and seeds.
