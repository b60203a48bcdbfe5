"""The demo as a user meets it: `python -m pipeline.cli demo` in a subprocess, driven by headless Chromium (Playwright)
and by gradio_client. One server per module; it is always stopped (process group killed), also on failure.

Needs gradio, gradio_client, playwright and a Chromium binary (Debian's `chromium`, /usr/bin/chromium; Playwright's
own browser download is not used). Without them the tests skip, or fail under CI=true.
Environment: DEMO_TEST_MODEL runs them on another model (e.g. pretrained/fashion-ddpm-cpu; default: the tiny one);
DEMO_SCREENSHOT_DIR keeps the screenshots.
"""

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import IN_CI, free_port, require_extra

pytestmark = pytest.mark.slow  # a server subprocess, a browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 180  # importing torch + gradio and building the app on 2 busy cores
RESULT_TIMEOUT_MS = 240_000


def stop(process: subprocess.Popen):
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def model(tiny_saved):
    return Path(os.environ.get("DEMO_TEST_MODEL") or tiny_saved)


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """URL of `python -m pipeline.cli demo --model MODEL --port P` on 127.0.0.1, stopped after the module's tests."""
    require_extra("gradio")
    log_path = tmp_path_factory.mktemp("demo-server") / "server.log"
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "demo", "--model", str(model), "--host",
                                    "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)  # its own process group: stop() ends Gradio's children too
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the demo server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo server did not answer within {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop(process)
    # Gradio logs the tracebacks of the range errors it raises itself; none may come from this project's code.
    log = log_path.read_text()
    assert f'File "{Path(__file__).resolve().parent.parent / "pipeline"}' not in log, log[-3000:]


@pytest.fixture(scope="module")
def pipe(model):
    from pipeline.models import load_pipeline

    return load_pipeline(model)


def expected_grid(pipe, classes, per_class, sampler, steps, guidance, seed):
    from pipeline import demo

    return demo.sample_grid(pipe, demo.check_request(pipe, classes, per_class, sampler, steps, guidance, seed))


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.int16)


def keep_screenshot(path: Path):
    if os.environ.get("DEMO_SCREENSHOT_DIR"):
        Path(os.environ["DEMO_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["DEMO_SCREENSHOT_DIR"]) / path.name)


def test_browser_generate_then_no_class(server, pipe, tmp_path):
    require_extra("playwright")
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CHROMIUM)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    from pipeline.settings import SamplingSettings

    defaults = SamplingSettings.resolve(pipe)
    grid, _ = expected_grid(pipe, ["Sneaker"], 1, defaults.sampler, defaults.steps,
                            defaults.guidance, 0)
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                       headless=True, viewport={"width": 1400, "height": 1250})
        try:
            page = browser.new_page()
            page.goto(server, wait_until="domcontentloaded")
            page.wait_for_selector("#generate", timeout=60_000)
            # Choose "Sneaker" only: clear the (all selected) classes, tick Sneaker; every other input keeps its default.
            page.click("#classes .select-all-checkbox")
            page.check("#classes input[name='Sneaker']")
            assert page.eval_on_selector_all("#classes input:checked", "els => els.map(e => e.name)") == ["Sneaker"]
            page.click("#generate")
            page.wait_for_function("() => { const i = document.querySelector('#grid img');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=RESULT_TIMEOUT_MS)
            size = page.eval_on_selector("#grid img", "i => [i.naturalWidth, i.naturalHeight]")
            assert tuple(size) == grid.size  # decoded by the browser, at the grid's size
            src = page.get_attribute("#grid img", "src")
            shown = Image.open(io.BytesIO(page.request.get(src).body()))
            assert np.abs(pixels(shown) - pixels(grid)).max() <= 1  # the image generate() makes for Sneaker, seed 0
            page.wait_for_function("() => { const i = document.querySelector('#reverse-gif img');"
                                   " return i && i.complete && i.naturalWidth > 0; }", timeout=RESULT_TIMEOUT_MS)
            gif = Image.open(io.BytesIO(page.request.get(page.get_attribute("#reverse-gif img", "src")).body()))
            assert gif.format == "GIF" and gif.n_frames == defaults.steps + 1
            assert "The same grid from the command line" in page.inner_text("#info")
            assert page.locator("#downloads a").count() == 2 or "samples.zip" in page.inner_text("#downloads")
            assert page.locator("[data-testid='toast-body']").count() == 0, page.inner_text("body")
            page.wait_for_timeout(500)
            page.screenshot(path=tmp_path / "demo.png", full_page=True)
            keep_screenshot(tmp_path / "demo.png")

            # Bad input: no class chosen -> a clear message in the page, no new image.
            page.uncheck("#classes input[name='Sneaker']")
            page.click("#generate")
            toast = page.wait_for_selector("[data-testid='toast-text']", timeout=60_000)
            assert toast.inner_text().strip() == "Choose at least one class."
            assert "Traceback" not in page.inner_text("body")
            page.wait_for_timeout(1000)  # the toast slides in
            page.screenshot(path=tmp_path / "demo_no_class.png")
            keep_screenshot(tmp_path / "demo_no_class.png")
        finally:
            browser.close()


def test_api_client(server, pipe):
    require_extra("gradio_client")
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    grid, _ = expected_grid(pipe, ["Bag", "Coat"], 2, "dpm++", 5, 3.0, 11)
    image, files, info = client.predict(["Bag", "Coat"], 2, "dpm++", 5, 3.0, 11, api_name="/generate")
    assert np.abs(pixels(Image.open(image)) - pixels(grid)).max() <= 1
    assert sorted(Path(f).name for f in files) == ["samples.png", "samples.zip"]
    with zipfile.ZipFile(next(f for f in files if f.endswith(".zip"))) as z:
        assert z.namelist() == ["bag_00_seed8000011.png", "bag_01_seed8000012.png", "coat_00_seed4000011.png",
                                "coat_01_seed4000012.png"]
    assert "--class Bag --class Coat --num 2 --scheduler dpm++ --steps 5 --guidance 3 --guidance-interval 0 1 --seed 11" in info
    gif, strip = client.predict(["Bag", "Coat"], 2, "dpm++", 5, 3.0, 11, api_name="/reverse_process")
    assert Image.open(gif).n_frames == 6 and Image.open(strip).width > 0
    everything = list(pipe.class_names)
    for args, words in ((([], 1, "dpm++", 5, 3.0, 0), "Choose at least one class."),
                        ((everything, 5, "dpm++", 5, 3.0, 0), "10 classes x 5 images = 50 images; at most 40 per request"),
                        ((everything, 3, "ddpm", 100, 3.0, 0), "30 images x 100 steps = 3000 image-steps; at most 2000"),
                        # beyond a slider's range Gradio itself answers, before the demo's own check
                        ((["Bag"], 1, "dpm++", 500, 3.0, 0), "Value 500 is greater than maximum value 100"),
                        ((["Bag"], 99, "dpm++", 5, 3.0, 0), "Value 99 is greater than maximum value 10")):
        with pytest.raises(AppError, match=words):
            client.predict(*args, api_name="/generate")


def test_two_users_at_once_both_get_their_images(server, pipe):
    require_extra("gradio_client")
    from gradio_client import Client

    requests = [(["Sandal"], 2, "ddim", 4, 2.0, 1), (["Trouser", "Dress"], 1, "unipc", 6, 4.0, 2)]
    results, errors = [None] * len(requests), []

    def user(k):
        try:
            results[k] = Client(server, verbose=False).predict(*requests[k], api_name="/generate")
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=user, args=(k,)) for k in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=RESULT_TIMEOUT_MS / 1000)
    assert not errors and all(results), errors
    for request, (image, _, _) in zip(requests, results):
        grid, _ = expected_grid(pipe, *request)
        assert np.abs(pixels(Image.open(image)) - pixels(grid)).max() <= 1


def test_demo_latency_times_the_student_chosen_on_a_page_of_two_models(tmp_path):
    """benchmarks/demo_latency.py on a tiny model and its tiny student served together: the browser picks the student in
    the Model choice, and its requests carry the style text and the model's label."""
    import json

    require_extra("playwright")
    if not os.access(CHROMIUM, os.X_OK):
        if IN_CI:
            pytest.fail(f"CI=true but no Chromium at {CHROMIUM}", pytrace=False)
        pytest.skip(f"no Chromium at {CHROMIUM}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.demo_latency", "--smoke", "--rounds", "1", "--users", "1",
                           "--choose", "1, 2 or 4", "--name", "student", "--chromium", CHROMIUM, "--out", str(tmp_path)],
                          cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads((tmp_path / "student.json").read_text())
    assert len(r["page_models"]) == 2 and r["chosen"] == r["page_models"][1] and "(1, 2 or 4" in r["chosen"]
    assert r["request"]["sampler"] == "ddim" and r["request"]["steps"] == 4 and r["fast"] is None
    assert r["median_click_to_grid_s"] > 0 and not r["concurrent"][0]["errors"]
