import os

# Files move to the tests' Hub server (tests/hub_server.py) as plain HTTP and Git LFS: huggingface_hub reads these at
# import, so they are set before anything imports it.
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gzip  # noqa: E402
import json  # noqa: E402
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline import FashionDDPMPipeline, FashionDDPMStudentPipeline
from pipeline.condition_encoder import FashionStudentConditionEncoder
from pipeline.data import DEBIAN_DIR, IDX_FILES
from pipeline.schedulers import make_scheduler
from pipeline.training.style import from_class_only

REPO = Path(__file__).resolve().parent.parent
CLIP_IMAGE_SIZE = 30  # the tiny CLIP processor's crop size (real CLIP: 224)
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
TINY_UNET = yaml.safe_load(TINY_CONFIG.read_text())["unet"]  # the one tiny U-Net (the default blocks, 8/16/16 channels)
HEAVY_MODULES = ("torch", "diffusers", "transformers", "datasets", "gradio")

# pytest-xdist (`-n 2` in pyproject's addopts): one torch thread per worker, so that two workers fill two cores without
# oversubscribing them, and the same for the subprocesses a test starts (a test comparing a subprocess's images with
# its own must compute with the same thread count).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# Real-data tests read the IDX files from $FASHION_MNIST_DIR, else Debian's dataset-fashion-mnist package.
DATA_DIR = Path(os.environ.get("FASHION_MNIST_DIR") or DEBIAN_DIR)
HAVE_DATA = all((DATA_DIR / name).is_file() for files in IDX_FILES.values() for name in files)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    for item in items:  # real-data tests are slow-tier tests
        if item.get_closest_marker("needs_data"):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_data") and not HAVE_DATA:
        reason = (f"Fashion-MNIST IDX files not found in {DATA_DIR} (set FASHION_MNIST_DIR or "
                  "apt-get install dataset-fashion-mnist)")
        if IN_CI:  # a green CI must mean the real-data tests ran
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that runs a benchmark or command in-process with --threads N sets torch's thread count for the whole
    process; the tests after it would compute with another reduction order (float differences of ~1e-6 against a
    subprocess's images). Every test gets the thread count back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def unet_calls(monkeypatch):
    """Counts U-Net forward passes in this process (bad input must be stopped before the first)."""
    from diffusers import UNet2DModel

    calls = []
    original = UNet2DModel.forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UNet2DModel, "forward", counting)
    return calls


def free_port() -> int:
    """A TCP port nobody listens on now (the demo server's, a 2-process launch's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch_2(*command: str) -> list[str]:
    """`accelerate launch` of `command` as 2 CPU processes (gloo) on a port of their own: pytest-xdist may run two such
    tests at once, and accelerate's default rendezvous port (29500) would then be taken."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no", *command]


def require_extra(module: str):
    """`module` from an optional extra (demo: gradio; dev: playwright): skipped where it is not installed (the README's
    `.[dev]` install), failed under CI=true (`.ci/run` installs `.[dev,demo]`, so a green CI means the test ran)."""
    try:
        return __import__(module)
    except ImportError:
        reason = f"{module} is not installed (pip install -e '.[dev,demo]')"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)


def heavy_modules_after(code: str, argv: list[str] = (), cwd: Path = REPO) -> tuple[list[str], str]:
    """Runs Python `code` (with sys.argv[1:] = argv) in a fresh interpreter, SystemExit caught; returns which of
    HEAVY_MODULES it imported, and what it printed. Asserts it printed no traceback."""
    wrapped = ("import sys\ntry:\n" + "".join(f"    {line}\n" for line in code.splitlines()) + "except SystemExit:\n    pass\n"
               f"print('HEAVY', sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", wrapped, *argv], capture_output=True, text=True, timeout=120, cwd=cwd)
    line = next((x for x in result.stderr.splitlines() if x.startswith("HEAVY ")), None)
    assert line is not None and "Traceback" not in result.stderr, result.stderr[-2000:]
    return json.loads(line[len("HEAVY "):].replace("'", '"')), result.stdout


def run_cli(argv, capsys) -> tuple[int, str]:
    """Runs `fashion-ddpm argv` in this process; returns (exit status, everything it printed)."""
    from pipeline.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    text = captured.out + captured.err + (code if isinstance(code, str) else "")
    return (2 if isinstance(code, str) else code or 0), text


def sigkill_when_exists(cmd: list[str], path: Path, env: dict, cwd: Path, timeout: float = 300):
    """Starts `cmd`, kills it with SIGKILL as soon as `path` exists (e.g. a checkpoint or a shard), waits for it."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    deadline = time.time() + timeout
    try:
        while not path.exists():
            assert proc.poll() is None, f"{cmd[1]} ended before {path.name} appeared"
            assert time.time() < deadline, f"{path} did not appear within {timeout} s"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def make_tiny_pipeline(seed: int = 0, **scheduler) -> FashionDDPMPipeline:
    """A randomly initialised pipeline small enough for a few milliseconds per step (diffusers-test style)."""
    torch.manual_seed(seed)
    pipe = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET, scheduler=scheduler or None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def tiny_pipe():
    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_saved(tmp_path_factory):
    """A tiny pipeline saved once to disk for load / CLI tests."""
    path = tmp_path_factory.mktemp("tiny") / "pipe"
    make_tiny_pipeline().save_pretrained(path)
    return path


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- a tiny random CLIP, saved like real weights
@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """Folder with a random 2-layer CLIPModel, a character-level CLIPTokenizer and a 30-pixel CLIPImageProcessor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    root = tmp_path_factory.mktemp("clip")
    tok_dir, model_dir = root / "tok", root / "clip"
    tok_dir.mkdir()
    # Every byte as a token, alone and word-final; no merges: any prompt tokenises character by character.
    from pipeline.training.clip import byte_chars

    chars = byte_chars()
    vocab = {tok: i for i, tok in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    image_processor = CLIPImageProcessor(size={"shortest_edge": CLIP_IMAGE_SIZE}, crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE})
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                  image_size=CLIP_IMAGE_SIZE, patch_size=6)
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(model_dir)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(model_dir)
    return model_dir


def sample_without_this_package(folder: Path, call: str, expected: torch.Tensor, cwd: Path, hidden: tuple = ()) -> str:
    """Loads `folder` with diffusers alone (trust_remote_code; '' and `hidden` taken off sys.path) in a fresh
    interpreter, runs `p(class_labels=['Dress', 'Bag'], output_type='pt', <call>)` and returns its stdout, which says
    `SAME True` when the images equal `expected` and `PACKAGE False` when this package was never imported."""
    torch.save(expected, cwd / "expected.pt")
    code = (f"import sys\nsys.path = [p for p in sys.path if p not in ('', *{tuple(map(str, hidden))!r})]\nimport torch\n"
            "from diffusers import DiffusionPipeline\n"
            f"p = DiffusionPipeline.from_pretrained({str(folder)!r}, trust_remote_code=True)\n"
            "p.set_progress_bar_config(disable=True)\n"
            f"got = p(class_labels=['Dress', 'Bag'], output_type='pt', {call}).images\n"
            f"print('SAME', torch.allclose(got, torch.load({str(cwd / 'expected.pt')!r}), atol=1e-6))\n"
            "print('PACKAGE', any(m == 'pipeline' or m.startswith('pipeline.') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def write_idx_folder(folder, n: int = 64, seed: int = 0):
    """Fashion-MNIST-shaped IDX .gz files (random pixels, labels 0..9) for both splits."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for images_name, labels_name in IDX_FILES.values():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (folder / images_name).write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + np.array([n, 28, 28], ">u4").tobytes()
                                                         + images.tobytes()))
        (folder / labels_name).write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes()
                                                         + labels.tobytes()))
    return folder


# A tiny teacher and its tiny few-step student (tests of distillation, the demo and the CLI)
INTERVAL = [0.17, 0.88]
SCHEDULES = {"1": [99], "2": [99, 49], "4": [99, 74, 49, 24]}


def tiny_teacher(seed: int = 0) -> FashionDDPMPipeline:
    base = make_tiny_pipeline(seed)
    pipe = FashionDDPMPipeline(base.unet, make_scheduler("unipc", base.scheduler.config), default_guidance_scale=2.0,
                               default_num_inference_steps=4, default_guidance_interval=INTERVAL)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_student(teacher: FashionDDPMPipeline, trained: bool = True) -> FashionDDPMStudentPipeline:
    """The teacher's U-Net with a distilled encoder; `trained` puts random weights in the (zero-initialised) MLP."""
    torch.manual_seed(1)
    encoder = FashionStudentConditionEncoder(11, teacher.unet.config.block_out_channels[0] * 4, guidance_range=[1.0, 3.0],
                                             guidance_interval=INTERVAL, step_schedules=SCHEDULES, distill_hidden_dim=16)
    unet = from_class_only(teacher, encoder)
    if trained:
        torch.nn.init.normal_(encoder.distill_mlp[-1].weight, std=0.5)
    pipe = FashionDDPMStudentPipeline(unet, make_scheduler("ddim", teacher.scheduler.config), default_guidance_scale=2.0,
                                      default_num_inference_steps=4, default_guidance_interval=INTERVAL,
                                      condition_encoder=encoder, default_timesteps=SCHEDULES["4"])
    pipe.set_progress_bar_config(disable=True)
    return pipe
