"""The Hub for real: models and datasets pushed to, and loaded from, a Hub-compatible server on 127.0.0.1
(tests/hub_server.py) through the real huggingface_hub client, diffusers and datasets, in fresh processes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hub_server import LocalHub
from test_distill import tiny_student, tiny_teacher
from test_style import tiny_style_pipeline

from conftest import REPO, gen, make_tiny_pipeline, require_extra, run_cli
from pipeline import FashionDDPMPipeline

TOKEN, OTHER_TOKEN = "hf_alice_write", "hf_bob_write"
SHIPPED = sorted(p.name for p in (REPO / "pretrained").iterdir() if (p / "model_index.json").is_file())

# Loads a repo by id in a process where this package cannot be imported (only the code stored beside the weights runs),
# samples, and saves the images: argv = repo id, output .npy, JSON of pipe(...) arguments, JSON of from_pretrained's.
LOADER = """
import json, sys
sys.modules["pipeline"] = None  # `import pipeline` now fails: the repo's own code files must do
import numpy as np, torch
from diffusers import DiffusionPipeline
repo, out, call, load = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
pipe = DiffusionPipeline.from_pretrained(repo, trust_remote_code=True, **load)
pipe.set_progress_bar_config(disable=True)
images = pipe(generator=torch.Generator().manual_seed(0), output_type="np", **call).images
np.save(out, images)
print(json.dumps({"class": type(pipe).__name__, "module": type(pipe).__module__}))
"""


@pytest.fixture(scope="module")
def hub():
    with LocalHub({TOKEN: "alice", OTHER_TOKEN: "bob"}) as server:
        yield server


def hub_env(hub, tmp_path, token: str | None = TOKEN, **extra) -> dict:
    """A client's environment: this server, a cache and login of its own, plain HTTP (no Xet), no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE")) and k != "PYTHONPATH"}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    if token:
        env["HF_TOKEN"] = token
    env.update(extra)
    return env


def run(env: dict, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


def cli(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return run(env, "-m", "pipeline.cli", *argv, cwd=REPO)


def load_by_id(env, tmp_path, repo: str, call: dict, **load) -> np.ndarray:
    out = tmp_path / f"{repo.replace('/', '--')}.npy"
    result = run(env, "-c", LOADER, repo, str(out), json.dumps(call), json.dumps(load), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["module"].startswith("diffusers_modules")  # the repo's code
    return np.load(out)


def local_images(folder, call: dict) -> np.ndarray:
    pipe = FashionDDPMPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe(generator=gen(0), output_type="np", **call).images


def committed_files(hub, repo_id: str, branch: str = "main", repo_type: str = "model") -> set[str]:
    repo = hub.repos[(repo_type, repo_id)]
    return set(repo.commits[repo.branches[branch]].files)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A class-only, a style and a few-step model, saved as a user exports them."""
    root = tmp_path_factory.mktemp("models")
    teacher = tiny_teacher()
    models = {"tiny-class": make_tiny_pipeline(), "tiny-style": tiny_style_pipeline(), "tiny-fast": tiny_student(teacher)}
    for name, pipe in models.items():
        pipe.save_pretrained(root / name)
    return root


# ------------------------------------------------------------------------------------------- the server is the Hub
@pytest.mark.slow
def test_the_server_refuses_what_the_hub_refuses_an_index_with_a_list_of_names(hub, tiny_models, tmp_path):
    """Realism: a folder with the model_index.json every model had before id2label fails on this server exactly as
    on the Hub (diffusers' download path reads a list of strings as a [module, class] component)."""
    from huggingface_hub import HfApi

    folder = tmp_path / "old-index"
    shutil.copytree(tiny_models / "tiny-class", folder)
    index = json.loads((folder / "model_index.json").read_text())
    names = index.pop("id2label")
    index["class_names"] = [names[str(i)] for i in range(10)]
    (folder / "model_index.json").write_text(json.dumps(index))
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    api.create_repo("alice/old-index")
    api.upload_folder(folder_path=folder, repo_id="alice/old-index")
    result = run(hub_env(hub, tmp_path), "-c", LOADER, "alice/old-index", str(tmp_path / "x.npy"), "{}", "{}", cwd=tmp_path)
    assert result.returncode != 0
    assert ("class_names/T-shirt/top.py as defined in `model_index.json` does not exist in alice/old-index"
            in result.stderr)
    # the same folder still loads from a local path (every older export keeps working)
    assert FashionDDPMPipeline.from_pretrained(folder).class_names[9] == "Ankle boot"


# ------------------------------------------------------------------------------------------- push, then load by id
@pytest.mark.slow
@pytest.mark.parametrize("name", ["tiny-class", "tiny-style", "tiny-fast"])
def test_push_then_load_by_id_without_this_package(hub, tiny_models, tmp_path, name):
    env = hub_env(hub, tmp_path)
    pushed = cli(env, "push", "--model", str(tiny_models / name), "--repo-id", f"alice/{name}")
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert f"{hub.endpoint}/alice/{name}" in pushed.stdout
    call = {"class_labels": ["Sneaker", "Bag"], "num_inference_steps": 2}
    if name == "tiny-style":
        call["style"] = "wide"
    images = load_by_id(env, tmp_path, f"alice/{name}", call)
    np.testing.assert_allclose(images, local_images(tiny_models / name, call), rtol=0, atol=1e-5)
    from huggingface_hub import hf_hub_download

    card = Path(hf_hub_download(f"alice/{name}", "README.md", endpoint=hub.endpoint, cache_dir=tmp_path / "c"))
    text = card.read_text()
    assert f'from_pretrained("alice/{name}", trust_remote_code=True)' in text and "USER/NAME" not in text
    assert "trust_remote_code=True" in text.split("```")[0] and 'revision="<commit sha>"' in text.split("```")[0]


@pytest.mark.slow
def test_every_shipped_model_loads_from_a_hub_id_and_samples(hub, tmp_path):
    """Every folder in pretrained/ served as a Hub repo and loaded by id in a process without this package."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    for name in SHIPPED + ["fashion-clip"]:
        api.create_repo(f"alice/shipped-{name}", exist_ok=True)
        api.upload_folder(folder_path=REPO / "pretrained" / name, repo_id=f"alice/shipped-{name}")
    env = hub_env(hub, tmp_path)
    for name in SHIPPED:
        call = {"class_labels": ["Dress"], "num_inference_steps": 1 if "fast" in name else 2}
        images = load_by_id(env, tmp_path, f"alice/shipped-{name}", call)
        assert images.shape == (1, 28, 28, 1) and np.isfinite(images).all()
    clip = run(env, "-c", "import sys; sys.modules['pipeline'] = None\n"
               "from transformers import CLIPModel, CLIPProcessor\n"
               "model = CLIPModel.from_pretrained('alice/shipped-fashion-clip')\n"
               "processor = CLIPProcessor.from_pretrained('alice/shipped-fashion-clip')\n"
               "print(type(model).__name__, model.config.projection_dim)", cwd=tmp_path)
    assert clip.returncode == 0 and clip.stdout.startswith("CLIPModel"), clip.stderr[-3000:]


# ------------------------------------------------------------------------------------------- tokens, privacy, branches
@pytest.mark.slow
def test_token_order_private_repo_branch_repush_and_offline_cache(hub, tiny_models, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_models / "tiny-class", folder)
    push = ["push", "--model", str(folder), "--repo-id", "alice/private-one", "--private"]
    # --token first: a wrong HF_TOKEN beside it does not matter
    assert cli(hub_env(hub, tmp_path, token="hf_wrong"), *push, "--token", TOKEN).returncode == 0
    # then HF_TOKEN, before a saved login of another user
    home = tmp_path / "hf-home"
    home.mkdir(exist_ok=True)
    (home / "token").write_text(OTHER_TOKEN)
    (folder / "notes.txt").write_text("temporary")
    assert cli(hub_env(hub, tmp_path), *push).returncode == 0
    assert "notes.txt" in committed_files(hub, "alice/private-one")
    # the saved login alone (bob's) cannot write alice's repo: refused in one line naming the repo
    refused = cli(hub_env(hub, tmp_path, token=None), *push)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "alice/private-one" in refused.stderr and "HTTP 403" in refused.stderr
    (home / "token").write_text(TOKEN)  # alice's saved login works
    (folder / "notes.txt").unlink()  # ... and a re-push removes what the folder no longer has
    assert cli(hub_env(hub, tmp_path, token=None), *push).returncode == 0
    assert "notes.txt" not in committed_files(hub, "alice/private-one")
    assert hub.repos[("model", "alice/private-one")].private
    # private: nobody else sees it
    call = {"class_labels": ["Bag"], "num_inference_steps": 2}
    stranger = run(hub_env(hub, tmp_path, token=OTHER_TOKEN, HF_HOME=str(tmp_path / "bob")), "-c", LOADER,
                   "alice/private-one", str(tmp_path / "x.npy"), json.dumps(call), "{}", cwd=tmp_path)
    assert stranger.returncode != 0 and "RepositoryNotFoundError" in stranger.stderr
    # a branch, loaded with revision=
    (folder / "model_index.json").write_text((folder / "model_index.json").read_text().replace(
        '"default_guidance_scale": 2.0', '"default_guidance_scale": 3.0'))
    assert cli(hub_env(hub, tmp_path), *push, "--revision", "stronger").returncode == 0
    env = hub_env(hub, tmp_path)
    main = load_by_id(env, tmp_path, "alice/private-one", call)
    branch = load_by_id(env, tmp_path, "alice/private-one", call, revision="stronger")
    assert not np.allclose(main, branch)  # the branch's guidance differs
    np.testing.assert_allclose(branch, local_images(folder, call), rtol=0, atol=1e-5)
    # offline, a second load is served from the cache: by this package's commands, and by diffusers from the cached
    # snapshot (diffusers 0.42 asks the Hub for the commit of a repo's code file even offline, so not by id there)
    offline = hub_env(hub, tmp_path, HF_HUB_OFFLINE="1")
    made = cli(offline, "generate", "--model", "alice/private-one", "--class", "Bag", "--num", "1", "--steps", "2",
               "--out", str(tmp_path / "offline.png"))
    assert made.returncode == 0 and (tmp_path / "offline.png").is_file(), made.stderr[-2000:]
    snapshot = run(offline, "-c", "from huggingface_hub import snapshot_download\n"
                   "print(snapshot_download('alice/private-one', local_files_only=True, allow_patterns=['*.json', '*.py', "
                   "'*.safetensors']))", cwd=tmp_path)
    assert snapshot.returncode == 0, snapshot.stderr[-2000:]
    cached = load_by_id(offline, tmp_path, snapshot.stdout.strip().splitlines()[-1], call)
    np.testing.assert_array_equal(cached, main)


@pytest.mark.parametrize("argv, expected", [
    (["--repo-id", "not a repo id"], "--repo-id 'not a repo id' is not a Hub repo id"),
    (["--repo-id", "alice/x/y"], "is not a Hub repo id"),
    (["--repo-id", "alice/x", "--model", str(REPO / "README.md")], "is not a folder"),
    (["--repo-id", "alice/x", "--model", str(REPO / "docs")], "is not a saved pipeline folder (no model_index.json"),
])
def test_bad_push_input_is_one_line_before_any_request(argv, expected, tiny_saved, capsys, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    argv = argv if "--model" in argv else [*argv, "--model", str(tiny_saved)]
    code, text = run_cli(["push", *argv], capsys)
    assert code == 2 and expected in text and text.strip().count("\n") == 0, text


def test_push_without_any_token_says_where_tokens_come_from(tiny_saved, capsys, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    code, text = run_cli(["push", "--model", str(tiny_saved), "--repo-id", "alice/x"], capsys)
    assert code == 2 and "no Hub token: pass --token, set HF_TOKEN, or run `hf auth login`" in text


# ------------------------------------------------------------------------------------------- failures
@pytest.mark.slow
def test_a_cut_upload_lands_no_commit_and_a_cut_download_leaves_no_corrupt_file(hub, tiny_models, tmp_path):
    env = hub_env(hub, tmp_path)
    folder = tmp_path / "fresh"
    make_tiny_pipeline(seed=7).save_pretrained(folder)  # weights the server holds no copy of: they must go up
    hub.fail_next("PUT", r"^/lfs-upload/", None, times=10)  # the connection drops at every try of the weights' upload
    cut = cli(env, "push", "--model", str(folder), "--repo-id", "alice/cut")
    hub.faults.clear()
    assert cut.returncode == 2 and cut.stderr.count("error:") == 1, cut.stderr
    assert cut.stderr.strip().splitlines()[-1].startswith("error: push to alice/cut failed: "), cut.stderr
    assert committed_files(hub, "alice/cut") == {".gitattributes"}  # created, but nothing committed
    assert cli(env, "push", "--model", str(folder), "--repo-id", "alice/cut").returncode == 0
    hub.fail_next("GET", r"/resolve/.*diffusion_pytorch_model\.safetensors$", None, times=10)
    call = {"class_labels": ["Bag"], "num_inference_steps": 2}
    failed = run(env, "-c", LOADER, "alice/cut", str(tmp_path / "x.npy"), json.dumps(call), "{}", cwd=tmp_path)
    assert failed.returncode != 0
    hub.faults.clear()
    weights = list((tmp_path / "hf-home").rglob("snapshots/*/unet/diffusion_pytorch_model.safetensors"))
    assert weights == [] or all(w.read_bytes() == (folder / "unet" / w.name).read_bytes() for w in weights)
    load_by_id(env, tmp_path, "alice/cut", call)  # and the next try downloads it whole


@pytest.mark.slow
def test_refusals_are_one_line_naming_the_repo_and_the_cause(hub, tiny_models, tmp_path):
    bad_token = cli(hub_env(hub, tmp_path, token="hf_wrong"), "push", "--model", str(tiny_models / "tiny-class"),
                    "--repo-id", "alice/refused")
    assert bad_token.returncode == 2 and "alice/refused" in bad_token.stderr and "HTTP 401" in bad_token.stderr
    assert bad_token.stderr.strip().count("\n") == 0
    hub.fail_next("POST", r"/commit/main$", 404)
    missing = cli(hub_env(hub, tmp_path), "push", "--model", str(tiny_models / "tiny-class"), "--repo-id", "alice/refused")
    assert missing.returncode == 2 and "push to alice/refused failed: HTTP 404" in missing.stderr
    generate = cli(hub_env(hub, tmp_path), "generate", "--model", "alice/no-such-model", "--out", str(tmp_path / "g.png"))
    assert generate.returncode == 2 and "alice/no-such-model" in generate.stderr
    assert generate.stderr.strip().count("\n") == 0, generate.stderr


# ------------------------------------------------------------------------------------------- commands with a Hub id
@pytest.mark.slow
def test_a_fine_tune_names_its_parent_and_commands_take_a_hub_id(hub, tiny_models, tmp_path):
    env = hub_env(hub, tmp_path)
    folder = tmp_path / "tiny-style"
    shutil.copytree(tiny_models / "tiny-style", folder)
    (folder / "train_config.json").write_text(json.dumps({"init_from": "pretrained/tiny-parent"}))
    missing = cli(env, "push", "--model", str(folder), "--repo-id", "alice/style-child")
    assert missing.returncode == 2 and "push that model first (to alice/tiny-parent)" in missing.stderr
    assert cli(env, "push", "--model", str(tiny_models / "tiny-class"), "--repo-id", "alice/tiny-parent").returncode == 0
    assert cli(env, "push", "--model", str(folder), "--repo-id", "alice/style-child").returncode == 0
    info = run(env, "-c", "from huggingface_hub import model_info; d = model_info('alice/style-child').card_data; "
               "print(d['base_model'], d['base_model_relation'])", cwd=tmp_path)
    assert info.stdout.split() == ["alice/tiny-parent", "finetune"], info.stderr[-2000:]
    out = tmp_path / "hub.png"
    made = cli(env, "generate", "--model", "alice/style-child", "--class", "Bag", "--num", "2", "--steps", "2",
               "--style", "wide", "--out", str(out))
    assert made.returncode == 0 and out.is_file(), made.stderr[-2000:]
    require_extra("gradio")
    space = run({**env, "FASHION_DDPM_MODEL": "alice/style-child"}, "-c", "import sys\n"
                "from pipeline.demo.space import space_app\n"
                "demo = space_app(sys.argv[1])\nprint(type(demo).__name__)", str(tmp_path), cwd=REPO)
    assert space.returncode == 0 and "Blocks" in space.stdout, space.stderr[-2000:]


# ------------------------------------------------------------------------------------------- a synthetic dataset
@pytest.mark.slow
def test_synthesize_push_to_hub_then_load_dataset_gives_the_same_rows(hub, tiny_saved, tmp_path):
    env = hub_env(hub, tmp_path)
    out = tmp_path / "synthetic"
    pushed = cli(env, "synthesize", "--model", str(tiny_saved), "--per-class", "2", "--classes", "Bag", "Sneaker",
                 "--steps", "1", "--out", str(out), "--push-to-hub", "alice/synthetic-fashion", "--no-progress")
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert f"{hub.endpoint}/datasets/alice/synthetic-fashion" in pushed.stdout
    loaded = run(env, "-c", "import json, sys\nfrom datasets import load_dataset\n"
                 "ds = load_dataset('alice/synthetic-fashion', split='train')\n"
                 "rows = [{k: v for k, v in r.items() if k != 'image'} | {'pixels': list(r['image'].getdata())} for r in ds]\n"
                 "print(json.dumps({'features': str(ds.features), 'rows': rows}))", cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    remote = json.loads(loaded.stdout.strip().splitlines()[-1])
    from pipeline.synthesis import load_synthetic

    local = load_synthetic(out)
    assert remote["features"] == str(local.features)
    assert remote["rows"] == [{k: v for k, v in r.items() if k != "image"} | {"pixels": list(r["image"].getdata())}
                              for r in local]
    from huggingface_hub import DatasetCard

    card = DatasetCard(hub.blobs[hub.repos[("dataset", "alice/synthetic-fashion")].commits[
        hub.repos[("dataset", "alice/synthetic-fashion")].branches["main"]].files["README.md"].blob].decode())
    assert 'load_dataset("alice/synthetic-fashion", split="train")' in card.text and "load_from_disk" not in card.text
    assert card.data.task_ids == ["multi-class-image-classification"]
    assert card.data.annotations_creators == ["machine-generated"]
    assert str(tmp_path) not in card.text  # the model is named by its folder's name, not a path of this machine


# ------------------------------------------------------------------------------------------- training's --push_to_hub
@pytest.mark.slow
def test_training_push_to_hub_uploads_the_exported_model_not_its_checkpoints(hub, tmp_path):
    env = hub_env(hub, tmp_path, OMP_NUM_THREADS="1")
    out = tmp_path / "run"
    trained = run(env, str(REPO / "train_conditional.py"), "--config", str(REPO / "configs" / "tiny.yaml"),
                  f"output_dir={out}", "--push_to_hub", "--hub_model_id", "alice/trained-tiny", cwd=REPO)
    assert trained.returncode == 0, trained.stderr[-3000:]
    files = committed_files(hub, "alice/trained-tiny")
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "pipeline_fashion_ddpm.py", "README.md",
            "samples/final.png"} <= files
    assert not any(f.startswith(("checkpoints/", "logs/")) for f in files) and (out / "checkpoints").is_dir()
    load_by_id(env, tmp_path, "alice/trained-tiny", {"class_labels": ["Bag"], "num_inference_steps": 2})
