"""Pictures: forward diffusion, reverse process, sample grid, loss curve, and the `visualize` command."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import HAVE_DATA, gen, make_tiny_pipeline
from pipeline.cli import main
from pipeline.sampling import generate, image_seed
from pipeline.visualize import (
    forward_diffusion_figure,
    forward_timesteps,
    reverse_process_figure,
    reverse_process_frames,
    sample_grid,
)

CELL = 28 * 3  # default scale 3 in the diffusion figures
needs_data = pytest.mark.needs_data


def test_forward_timesteps():
    assert forward_timesteps(100) == [None, 19, 39, 59, 79, 99]  # x_0, x_20, ..., x_100 (= add_noise index T-1)
    with pytest.raises(ValueError, match="fractions"):
        forward_timesteps(100, [1.5])


def test_forward_figure_from_given_images():
    pipe = make_tiny_pipeline()
    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    figure = forward_diffusion_figure(pipe, images=images)
    assert figure.width >= 6 * CELL and figure.height >= 10 * CELL
    with pytest.raises(ValueError, match="one per class"):
        forward_diffusion_figure(pipe, images=images[:3])


@needs_data
def test_forward_figure_from_the_test_set(tmp_path):
    figure = forward_diffusion_figure(make_tiny_pipeline())
    figure.save(tmp_path / "f.png")
    assert figure.width >= 6 * CELL and figure.height >= 10 * CELL
    assert len(np.unique(np.asarray(figure.convert("L")))) > 20  # real pictures, not a blank canvas


def test_reverse_frames_follow_the_schedule():
    pipe = make_tiny_pipeline()
    frames, labels, samples = reverse_process_frames(pipe, class_labels=["Bag", 0], steps=6, every=2)
    # noise, after steps 2 and 4, and the final image (step 6 is the final one, not repeated)
    assert len(frames) == len(labels) == 4
    assert labels[0] == "t=100" and labels[-1] == "t=0"
    assert all(tuple(f.shape) == (2, 1, 28, 28) for f in frames)
    # the recorded run is image 0 of each class as `generate` makes it (the project's one seed rule)
    again = generate(pipe, ["Bag", 0], 1, seed=0, steps=6).images
    torch.testing.assert_close(samples.images, again)
    noise = torch.cat([torch.randn((1, 1, 28, 28), generator=gen(image_seed(0, c, 0))) for c in (8, 0)])
    torch.testing.assert_close(frames[0], noise)
    torch.testing.assert_close(frames[-1], samples.images * 2 - 1)
    with pytest.raises(ValueError, match="every"):
        reverse_process_frames(pipe, steps=2, every=0)


def test_reverse_figure_size():
    figure = reverse_process_figure(make_tiny_pipeline(), steps=4, every=2)
    # 10 rows; columns: noise, after step 2, final
    assert 3 * CELL <= figure.width < 5 * CELL + 200 and figure.height >= 10 * CELL


def test_sample_grid_size():
    figure = sample_grid(make_tiny_pipeline(), num_per_class=3, steps=2, guidance=2.0)
    assert figure.width >= 3 * 56 and figure.height >= 10 * 56


def _metrics(path):
    with open(path, "w") as f:
        for step in range(1, 41):
            f.write(json.dumps({"step": step, "loss": 1.0 / step}) + "\n")
    return path


def test_cli_visualize(tiny_saved, tmp_path, capsys):
    args = ["visualize", "--model", str(tiny_saved), "--steps", "4", "--every", "2", "--num-per-class", "2",
            "--guidance", "2", "--out", str(tmp_path / "fig"), "--metrics", str(_metrics(tmp_path / "metrics.jsonl"))]
    if not HAVE_DATA:
        args.append("--no-forward")
    main(args)
    assert "wrote" in capsys.readouterr().out
    # minimum (width, height): 10 class rows of 28-pixel cells at scale 3 (diffusion figures) or 2 (samples)
    expected = {"reverse_process.png": (3 * CELL, 10 * CELL), "samples.png": (2 * 56, 10 * 56), "loss_curve.png": (400, 250)}
    if HAVE_DATA:
        expected["forward_diffusion.png"] = (6 * CELL, 10 * CELL)
    for name, (width, height) in expected.items():
        image = Image.open(tmp_path / "fig" / name)
        assert image.width >= width and image.height >= height, (name, image.size)

    # without --metrics there is no loss curve
    main(["visualize", "--model", str(tiny_saved), "--steps", "2", "--num-per-class", "1", "--no-forward",
          "--out", str(tmp_path / "fig2")])
    assert sorted(os.listdir(tmp_path / "fig2")) == ["reverse_process.png", "samples.png"]

    with pytest.raises(SystemExit, match="--metrics .* does not exist"):
        main(["visualize", "--model", str(tiny_saved), "--metrics", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)])


def test_missing_data_is_a_clear_error(tiny_saved, tmp_path):
    with pytest.raises(SystemExit, match="(?s)does not hold.*Fashion-MNIST.*--no-forward"):
        main(["visualize", "--model", str(tiny_saved), "--steps", "2", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
