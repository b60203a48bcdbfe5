"""Every model folder in pretrained/ gives exactly the images it gave when it was saved.

Each folder holds a copy of the pipeline's code beside its weights (`pipeline_fashion_ddpm.py`, and a condition
encoder's `condition_encoder.py`): what `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` runs. Those
copies are never edited, so they are the record of how the model sampled when it was saved. Here each folder is loaded
twice on the same weights, through its committed copy (imported from the folder under a module name of its own, so
neither this package nor another folder's copy stands in) and through this package (`load_pipeline`, the class every
command uses), and the same seeds must give the same tensors, bit for bit: with the folder's own sampler and defaults,
a few steps, guided and unguided steps both (the teachers' 3 trailing steps put t = 99 outside their guidance interval),
rescale, a style request with and without its own weight, and the student's schedules.
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from pipeline.condition_encoder import FashionConditionEncoder, FashionStudentConditionEncoder
from pipeline.models import DEFAULT_MODEL, load_pipeline
from pipeline.pipeline_fashion_ddpm import FashionDDPMPipeline, FashionDDPMStudentPipeline

PRETRAINED = DEFAULT_MODEL.parent
# folder -> the calls compared (beside class_labels, generator and output_type)
CALLS = {
    "fashion-ddpm-cpu": [{"num_inference_steps": 3}],
    "fashion-ddpm-gpu": [{"num_inference_steps": 3, "guidance_rescale": 0.5}],
    "fashion-ddpm-style": [{"num_inference_steps": 3, "style": "wide plain"},
                           {"num_inference_steps": 3, "style": "wide", "style_guidance_scale": 3.0}],
    "fashion-ddpm-cpu-fast": [{}, {"num_inference_steps": 2, "guidance_scale": 2.5}],
}
FOLDERS = sorted(p.parent.name for p in PRETRAINED.glob("fashion-ddpm-*/model_index.json"))


def import_file(path: Path, name: str, monkeypatch):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def committed_pipeline(folder: Path, monkeypatch):
    """The pipeline as the code committed beside the weights builds it, with no remote-code machinery: its encoder's
    file is imported as the module model_index.json names (diffusers asks that it be imported), for this test only."""
    index = json.loads((folder / "model_index.json").read_text())
    name = "committed_" + folder.name.replace("-", "_")
    module = import_file(folder / "pipeline_fashion_ddpm.py", name, monkeypatch)
    components = {}
    if (folder / "condition_encoder" / "condition_encoder.py").is_file():
        file, class_name = index["condition_encoder"]
        encoders = import_file(folder / "condition_encoder" / f"{file}.py", file, monkeypatch)
        components["condition_encoder"] = getattr(encoders, class_name).from_pretrained(folder / "condition_encoder")
    pipe = getattr(module, index["_class_name"][1]).from_pretrained(folder, **components)
    assert type(pipe).__module__ == name
    encoder = getattr(pipe, "condition_encoder", None)
    assert encoder is None or Path(sys.modules[type(encoder).__module__].__file__).parent == folder / "condition_encoder"
    return pipe


def test_every_folder_has_its_calls():
    assert FOLDERS and set(FOLDERS) == set(CALLS), f"pretrained/ holds {FOLDERS}; give each its calls in CALLS"


@pytest.mark.parametrize("name", FOLDERS)
def test_the_package_samples_what_the_committed_copy_samples(name, monkeypatch):
    folder = PRETRAINED / name
    committed, package = committed_pipeline(folder, monkeypatch), load_pipeline(folder)
    assert type(package).__module__ == "pipeline.pipeline_fashion_ddpm"
    for call in CALLS[name]:
        images = []
        for pipe in (committed, package):
            pipe.set_progress_bar_config(disable=True)
            generators = [torch.Generator().manual_seed(seed) for seed in (7, 8)]
            images.append(pipe(class_labels=["Bag", "Dress"], generator=generators, output_type="pt", **call).images)
        assert torch.equal(images[0], images[1]), f"{name} {call}: max difference {(images[0] - images[1]).abs().max()}"


def test_a_student_saved_as_the_main_pipeline_loads_as_the_student_class():
    """fashion-ddpm-cpu-fast was saved before FashionDDPMStudentPipeline existed: its model_index.json names
    FashionDDPMPipeline and FashionConditionEncoder, and the package maps both to the student's classes."""
    folder = PRETRAINED / "fashion-ddpm-cpu-fast"
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"][1] == "FashionDDPMPipeline" and index["condition_encoder"][1] == "FashionConditionEncoder"
    for pipe in (load_pipeline(folder), FashionDDPMPipeline.from_pretrained(folder),
                 FashionDDPMStudentPipeline.from_pretrained(folder)):
        assert type(pipe) is FashionDDPMStudentPipeline and type(pipe.condition_encoder) is FashionStudentConditionEncoder
    style = load_pipeline(PRETRAINED / "fashion-ddpm-style")
    assert type(style) is FashionDDPMPipeline and type(style.condition_encoder) is FashionConditionEncoder


def test_the_wrong_class_for_a_folder_is_one_line():
    with pytest.raises(ValueError, match="holds a class or style model; load it with FashionDDPMPipeline") as error:
        FashionDDPMStudentPipeline.from_pretrained(PRETRAINED / "fashion-ddpm-cpu")
    assert "\n" not in str(error.value)
