"""The commands configs/README.md gives for the shipped few-step student make the stages its distill.json records
(the configs are only read and checked: nothing is trained)."""

import dataclasses
import json
import shlex

from conftest import REPO
from pipeline.training.distill import DistillConfig, load_config

STUDENT = REPO / "pretrained" / "fashion-ddpm-cpu-fast"


def documented_stages() -> list[list[str]]:
    """The argv of each `fashion-ddpm distill` line in configs/README.md, in order."""
    lines = (REPO / "configs" / "README.md").read_text().splitlines()
    return [shlex.split(line.split("#")[0])[2:] for line in lines if line.startswith("fashion-ddpm distill ")]


def config_of(argv: list[str]):
    assert argv[0] == "--config"
    return load_config(str(REPO / argv[1]), argv[2:])


def test_documented_stages_make_the_shipped_student():
    record = json.loads((STUDENT / "distill.json").read_text())
    stages = documented_stages()
    assert len(stages) == len(record["stats"]["stages"]) == 8
    for number, (argv, recorded) in enumerate(zip(stages, record["stats"]["stages"]), 1):
        config = config_of(argv)
        made = {"updates": config.max_train_steps, "learning_rate": config.learning_rate,
                "init_student": config.init_student, "step_weights": config.step_weights,
                "trajectories": config.trajectories_per_class * 10 * len(config.guidance_values)}
        assert {k: made[k] for k in recorded if k in made} == {k: v for k, v in recorded.items() if k in made}, number
        if number > 1:  # each stage trains on from the one before and shares stage 1's trajectories
            assert config.init_student == config_of(stages[number - 2]).output_dir
            assert config.trajectory_folder == config_of(stages[0]).trajectory_folder
    made = dataclasses.asdict(config_of(stages[-1]))  # the last stage is the shipped run's config
    assert {key: made[key] for key in record["config"]} == record["config"]
    newer = {key: value for key, value in made.items() if key not in record["config"]}  # keys added since, at defaults
    assert newer == {key: getattr(DistillConfig(), key) for key in newer}



def test_every_config_in_configs_is_valid_for_its_command():
    """Each configs/*.yaml passes its own loader's checks (a typo in a key or a value stops here, not hours into a run):
    diffusion configs the trainer's, distillation configs (a `teacher` key) the distiller's; the CLIP's is read by its
    own script."""
    from pipeline.training.config import load_config as load_train_config
    from pipeline.training.config import read_values

    checked = []
    for path in sorted((REPO / "configs").glob("*.yaml")):
        if path.name == "clip.yaml":
            continue
        values = read_values(str(path), [])
        (load_config if "teacher" in values else load_train_config)(str(path))
        checked.append(path.name)
    assert {"distill_pilot_trajectory.yaml", "distill_pilot_tuning.yaml", "default_style.yaml"} <= set(checked)
