"""The web demo's library part (pipeline/demo/), the `fashion-ddpm demo` command and the staged Space folder.

The browser and gradio_client tests against a running server are in test_demo_browser.py.
"""

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import HAVE_DATA, require_extra
from pipeline import demo
from pipeline.cli import main
from pipeline.models import check_model_folder, load_pipeline
from pipeline.settings import SamplingSettings


@pytest.fixture(scope="module")
def pipe(tiny_saved):
    return load_pipeline(tiny_saved)


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.int16)


# ------------------------------------------------------------------------------------------- requests
BAD_REQUESTS = [  # (classes, per_class, sampler, steps, guidance, seed) -> words of the message
    (([], 1, "ddpm", 10, 2.0, 0), "Choose at least one class."),
    ((None, 1, "ddpm", 10, 2.0, 0), "Choose at least one class."),
    ((["spaceship"], 1, "ddpm", 10, 2.0, 0), "unknown class name 'spaceship'"),
    ((["Bag"], 0, "ddpm", 10, 2.0, 0), "Images per class must be from 1 to 10, got 0"),
    ((["Bag"], 11, "ddpm", 10, 2.0, 0), "Images per class must be from 1 to 10, got 11"),
    ((["Bag"], 1.5, "ddpm", 10, 2.0, 0), "Images per class must be a whole number from 1 to 10, got 1.5"),
    ((["Bag"], "2", "ddpm", 10, 2.0, 0), "Images per class must be a whole number"),
    ((["Bag"], 1, "plms", 10, 2.0, 0), "Unknown sampler 'plms'; choose one of ddpm, ddim"),
    ((["Bag"], 1, "ddpm", 0, 2.0, 0), "Steps must be from 1 to 100, got 0"),
    ((["Bag"], 1, "ddpm", 101, 2.0, 0), "Steps must be from 1 to 100, got 101"),
    ((["Bag"], 1, "ddpm", 10, -1.0, 0), "Guidance must be a number from 0 to 10, got -1.0"),
    ((["Bag"], 1, "ddpm", 10, float("nan"), 0), "Guidance must be a number from 0 to 10, got nan"),
    ((["Bag"], 1, "ddpm", 10, 11, 0), "Guidance must be a number from 0 to 10"),
    ((["Bag"], 1, "ddpm", 10, 2.0, -1), "Seed must be from 0 to 2147483647, got -1"),
    ((["Bag"], 1, "ddpm", 10, 2.0, float("inf")), "Seed must be a whole number"),
]


def test_check_request_rejects_bad_input(pipe):
    for args, words in BAD_REQUESTS:
        with pytest.raises(demo.DemoInputError) as info:
            demo.check_request(pipe, *args)
        assert words in str(info.value), (args, str(info.value))


def test_request_limits(pipe):
    names = pipe.class_names
    assert demo.MAX_IMAGES_PER_CLASS * len(names) > demo.MAX_IMAGES_PER_REQUEST  # the total limit can bite
    with pytest.raises(demo.DemoInputError, match=r"10 classes x 5 images = 50 images; at most 40 per request"):
        demo.check_request(pipe, names, 5, "dpm++", 10, 2.0, 0)
    with pytest.raises(demo.DemoInputError, match=r"30 images x 100 steps = 3000 image-steps; at most 2000 .*dpm\+\+ with 10"):
        demo.check_request(pipe, names, 3, "ddpm", 100, 2.0, 0)
    ok = demo.check_request(pipe, names, 4, "dpm++", 20, 2.0, 0)  # 40 images x 20 steps: allowed
    assert ok == {"labels": list(range(10)), "per_label": 4, "seed": 0,
                  "settings": SamplingSettings.resolve(pipe, sampler="dpm++", steps=20, guidance=2.0)}
    # A class chosen twice counts once; numpy / float whole numbers (what Gradio hands over) are taken.
    again = demo.check_request(pipe, ["Bag", "bag", 8], np.int64(2), "ddpm", 10.0, 1, 5.0)
    assert again["labels"] == [8] and again["per_label"] == 2 and again["settings"].steps == 10 and again["seed"] == 5


def test_defaults_come_from_the_model(pipe):
    s = SamplingSettings.resolve(pipe)
    d = demo.defaults(pipe)
    assert (d["sampler"], d["steps"], d["guidance"]) == (s.sampler, s.steps, s.guidance)
    assert d["classes"] == pipe.class_names and d["per_class"] == demo.DEFAULT_IMAGES_PER_CLASS
    assert demo.steps_for(pipe, s.sampler) == s.steps
    assert demo.steps_for(pipe, "dpm++") == 20


# ------------------------------------------------------------------------------------------- images
def test_grid_equals_fashion_ddpm_generate(pipe, tiny_saved, tmp_path, capsys):
    """Same settings, same picture: the demo's grid is the PNG `fashion-ddpm generate` writes (12 images, so the demo
    samples in two batches of DEMO_BATCH_SIZE where the command makes one)."""
    out = tmp_path / "cli.png"
    main(["generate", "--model", str(tiny_saved), "--class", "Sneaker", "--class", "Bag", "--num", "6", "--scheduler",
          "dpm++", "--steps", "4", "--guidance", "3", "--seed", "7", "--out", str(out)])
    request = demo.check_request(pipe, ["Sneaker", "Bag"], 6, "dpm++", 4, 3, 7)
    batches = []
    grid, samples = demo.sample_grid(pipe, request, progress=lambda done, total: batches.append((done, total)))
    assert batches == [(10, 12), (12, 12)]
    cli = Image.open(out)
    assert grid.size == cli.size
    assert np.abs(pixels(grid) - pixels(cli)).max() <= 1  # batch-size float noise may move a pixel by one level
    assert demo.cli_command(request, pipe.class_names) == (
        "fashion-ddpm generate --class Sneaker --class Bag --num 6 --scheduler dpm++ --steps 4 --guidance 3 "
        "--guidance-interval 0 1 --seed 7")  # the interval named: the same settings replay on any model
    assert demo.cli_command(demo.check_request(pipe, ["Ankle boot"], 1, "ddpm", 3, 2, 0), pipe.class_names,
                            "m").startswith("fashion-ddpm generate --model m --class 'Ankle boot' --num 1")


def test_downloads(pipe, tmp_path):
    request = demo.check_request(pipe, ["T-shirt/top", "Bag"], 2, "dpm++", 3, 2, 4)
    grid, samples = demo.sample_grid(pipe, request)
    png, archive = demo.write_downloads(grid, samples, tmp_path / "dl")
    assert (pixels(Image.open(png)) == pixels(grid)).all()
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert names == ["t-shirt-top_00_seed4.png", "t-shirt-top_01_seed5.png", "bag_00_seed8000004.png",
                         "bag_01_seed8000005.png"]
        for name, image in zip(names, samples.pil()):
            single = Image.open(io.BytesIO(z.read(name)))
            assert single.size == (28, 28) and (pixels(single) == pixels(image)).all()


def test_reverse_process_ends_on_the_grid_image(pipe, tmp_path):
    request = demo.check_request(pipe, ["Coat", "Bag"], 3, "ddpm", 12, 2, 3)
    _, samples = demo.sample_grid(pipe, request)
    gif, strip = demo.reverse_process(pipe, 4, request, tmp_path)
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 13  # x_T and after each of the 12 steps
    assert animation.size == (28 * demo.GIF_SCALE,) * 2
    animation.seek(animation.n_frames - 1)
    last = animation.convert("L").resize((28, 28), Image.NEAREST)
    assert np.abs(pixels(last) - pixels(samples.pil()[0])).max() <= 1  # image 0 of Coat, the grid's first
    assert strip.width > 10 * 28 * 3 and strip.height > 28 * 3  # ~10 columns of x_t at 3x


def test_forward_examples_round_trip(tmp_path):
    import torch

    images = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8)
    Image.fromarray(images.permute(1, 0, 2).reshape(28, -1).numpy()).save(tmp_path / "f.png")
    assert torch.equal(demo.read_forward_examples(tmp_path / "f.png", 10), images)
    with pytest.raises(ValueError, match="must hold 9 square images side by side"):
        demo.read_forward_examples(tmp_path / "f.png", 9)
    assert demo.forward_examples(str(tmp_path)) is None  # no IDX files there: the figure is hidden, nothing downloaded


# ------------------------------------------------------------------------------------------- command line
def test_demo_without_gradio_says_which_extra(tiny_saved, monkeypatch, capsys):
    import pipeline.models

    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    loads = []
    monkeypatch.setattr(pipeline.models, "load_pipeline", lambda *a, **k: loads.append(1))
    with pytest.raises(SystemExit) as info:
        main(["demo", "--model", str(tiny_saved)])
    message = str(info.value)  # exit status 2, the one line printed to stderr
    assert message.startswith("error: the demo needs Gradio") and "pip install -e '.[demo]'" in message
    assert info.value.code == 2 and "\n" not in message and not loads


def test_demo_arguments(capsys):
    for argv, words in ((["demo", "--port", "70000"], "must be a TCP port 1..65535, got 70000"),
                        (["demo", "--port", "0"], "must be >= 1, got 0")):
        with pytest.raises(SystemExit):
            main(argv)
        assert words in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--hub-model-id only goes with --stage-space"):
        main(["demo", "--hub-model-id", "me/model"])


# ------------------------------------------------------------------------------------------- the Space
def test_space_readme_states_the_limits():
    text = (demo.SPACE_TEMPLATE / "README.md").read_text()
    assert (f"{demo.MAX_IMAGES_PER_REQUEST} images, {demo.MAX_STEPS} steps, {demo.MAX_IMAGE_STEPS} images × steps"
            in text)
    gradio = require_extra("gradio")
    assert yaml.safe_load(text.split("---")[1])["sdk_version"] == gradio.__version__


def test_stage_space(tiny_saved, tmp_path, capsys):
    out = tmp_path / "space"
    main(["demo", "--stage-space", str(out), "--model", str(tiny_saved), "--hub-model-id", "someone/fashion-ddpm"])
    assert f"wrote the Space folder {out}" in capsys.readouterr().out
    header = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py" and header["models"] == ["someone/fashion-ddpm"]
    assert (out / "app.py").read_text() == (demo.SPACE_TEMPLATE / "app.py").read_text()
    assert "diffusers" in (out / "requirements.txt").read_text()
    assert (out / "pipeline" / "demo" / "space.py").is_file() and not (out / "pipeline" / "pretrained").exists()
    assert not (out / "pipeline" / "demo" / "space_template").exists()  # the template is the folder itself
    assert not list(out.rglob("__pycache__"))
    check_model_folder(out / "model")
    assert (out / "forward_examples.png").is_file() == HAVE_DATA
    assert demo.space_model(out) == str(out / "model")
    # Staging refuses to mix into a folder that holds something, and a bad Hub id.
    with pytest.raises(SystemExit, match="exists and is not an empty folder"):
        main(["demo", "--stage-space", str(out), "--model", str(tiny_saved)])
    with pytest.raises(SystemExit, match="--hub-model-id 'x y' is not a Hub repo id; give user/name"):
        main(["demo", "--stage-space", str(tmp_path / "other"), "--model", str(tiny_saved), "--hub-model-id", "x y"])
    assert not (tmp_path / "other").exists()
    plain = tmp_path / "plain"
    demo.stage_space(plain, tiny_saved)
    assert yaml.safe_load((plain / "README.md").read_text().split("---")[1])["models"] == []


@pytest.mark.slow  # subprocess
def test_staged_space_app_runs_its_own_copy(tiny_saved, tmp_path):
    """The staged app.py imports the staged package (not the installed one), loads model/ and builds the app."""
    require_extra("gradio")
    out = demo.stage_space(tmp_path / "space", tiny_saved)
    code = ("import runpy, sys\nns = runpy.run_path('app.py')\nimport pipeline\n"
            "print('PACKAGE', pipeline.__file__)\nprint('MODEL', ns['demo'].config['components'] is not None)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=out, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
    assert f"PACKAGE {out / 'pipeline' / '__init__.py'}" in result.stdout, result.stderr[-3000:]
    assert "MODEL True" in result.stdout


def test_narrow_grid_keeps_its_title():
    """One image per class (the demo's default) made a grid narrower than its title, which was cut off."""
    from pipeline.images import _font, labelled_grid

    title = "ddpm 100 steps, guidance 2, seed 0"
    grid = labelled_grid([[Image.new("L", (28, 28))]], ["Bag"], title=title)
    assert grid.width >= 4 + _font().getlength(title)


@pytest.mark.slow  # a Gradio server in this process
def test_serve_answers_its_default_request_once_before_it_serves_visitors(pipe, unet_calls, capsys, monkeypatch):
    require_extra("gradio")
    app = demo.build_demo(pipe, forward_images=None)
    blocked = []
    monkeypatch.setattr(app, "block_thread", lambda: blocked.append(len(unet_calls)))  # where a visitor would come in
    try:
        demo.serve(app, server_name="127.0.0.1", server_port=None)
    finally:
        app.close()
    defaults = demo.defaults(pipe)
    # the grid (its steps, guided ones twice) and the reverse process of the default request, before serving
    assert blocked and blocked[0] >= 2 * defaults["steps"]
    assert f"{demo.WARM_LINE} the default request took" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- two models
def test_a_page_of_two_models_offers_the_student_beside_the_default_and_answers_with_the_chosen_one(pipe, unet_calls):
    """The default and its few-step student on one page: a Model choice (the default first until the student meets its
    targets), each request sampled by the model it names, with that model's checks and command line."""
    require_extra("gradio")
    from conftest import tiny_student, tiny_teacher
    from pipeline.models import FAST_MODEL_NAME, SHIPPED_MODEL_NAME

    student = tiny_student(tiny_teacher())
    models = demo.offered_models(pipe, fast=student)
    assert [m.label for m in models] == [SHIPPED_MODEL_NAME, f"{FAST_MODEL_NAME} (1, 2 or 4 U-Net passes)"]
    assert [m.fast for m in models] == [False, True]
    assert demo.offered_models(pipe, fast=student, fast_first=True) == models[::-1]
    app = demo.build_demo(pipe, fast=student, forward_images=None)
    # the inputs: the request, the style box (hidden: neither tiny model takes a style) and the model's label
    assert app.default_request[-2:] == ["", SHIPPED_MODEL_NAME]
    generate = next(f.fn for f in app.fns.values() if f.api_name == "generate")
    unet_calls.clear()
    grid, files, info = generate(["Bag"], 1, "ddim", 4, 2.0, 0, "", models[1].label)
    assert len(unet_calls) == 4 and "fashion-ddpm generate --fast --class Bag" in info  # one pass per student step
    expected, _ = demo.sample_grid(student, demo.check_request(student, ["Bag"], 1, "ddim", 4, 2.0, 0))
    assert (pixels(grid) == pixels(expected)).all()
    import gradio

    with pytest.raises(gradio.Error, match=r"must be one of \[1, 2, 4\] .*got 3"):  # before any U-Net call
        unet_calls.clear()
        generate(["Bag"], 1, "ddim", 3, 2.0, 0, "", models[1].label)
    assert not unet_calls
    with pytest.raises(gradio.Error, match="Unknown model 'other'; choose one of"):
        generate(["Bag"], 1, "ddim", 4, 2.0, 0, "", "other")
    _, _, info = generate(["Bag"], 1, "dpm++", 3, 2.0, 0, "", SHIPPED_MODEL_NAME)
    assert "fashion-ddpm generate --class Bag" in info and "--fast" not in info


def test_stage_space_stages_the_student_beside_the_model_and_names_both_hub_ids(tiny_saved, tmp_path):
    from conftest import tiny_student, tiny_teacher

    tiny_student(tiny_teacher()).save_pretrained(tmp_path / "student")
    out = demo.stage_space(tmp_path / "space", tiny_saved, "someone/fashion-ddpm", fast=tmp_path / "student",
                           hub_fast_model_id="someone/fashion-ddpm-fast")
    header = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert header["models"] == ["someone/fashion-ddpm", "someone/fashion-ddpm-fast"]
    check_model_folder(out / "fast")
    with pytest.raises(ValueError, match="is not a few-step student"):
        demo.stage_space(tmp_path / "other", tiny_saved, fast=tiny_saved)
    assert not (tmp_path / "other").exists()
