"""The few-step student: its targets, its one pass per step, its inputs checked, its training run and resume."""

import json
import os
import shutil
import sys

import pytest
import torch

from conftest import INTERVAL, REPO, SCHEDULES, TINY_UNET, run_cli, sample_without_this_package, sigkill_when_exists, tiny_student, tiny_teacher
from pipeline import FashionDDPMPipeline, FashionDDPMStudentPipeline, generate
from pipeline.condition_encoder import FashionStudentConditionEncoder
from pipeline.schedulers import make_scheduler
from pipeline.training.distill import load_config, validate, velocity_target


@pytest.fixture(scope="module")
def student_saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("student") / "student"
    tiny_student(tiny_teacher()).save_pretrained(path)
    return path


@pytest.mark.parametrize("t_from,t_to", [(99, -1), (99, 49), (74, 49), (49, 24), (24, -1)])
def test_the_velocity_target_makes_the_students_ddim_step_land_on_the_teachers_state(t_from, t_to):
    teacher = tiny_teacher()
    scheduler = make_scheduler("ddim", teacher.scheduler.config)
    x_from, x_to = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)).unbind(0)[0:2]
    x_from, x_to = x_from[None].repeat(3, 1, 1, 1), x_to[None].repeat(3, 1, 1, 1)
    t = torch.full((3,), t_from)
    v = velocity_target(x_from, x_to, t, torch.full((3,), t_to), teacher.scheduler.alphas_cumprod)
    scheduler.set_timesteps(timesteps=[t_from] + ([t_to] if t_to >= 0 else []))
    landed = scheduler.step(v, t_from, x_from).prev_sample
    torch.testing.assert_close(landed, x_to, rtol=0, atol=1e-5)


def test_an_untrained_student_is_its_teachers_conditional_model():
    teacher = tiny_teacher()
    student = tiny_student(teacher, trained=False)
    x, t, labels = torch.randn(4, 1, 28, 28), torch.tensor(74), torch.tensor([0, 3, 8, 10])
    expected = teacher.unet(x, t, class_labels=labels).sample
    for w, level in ((1.0, 0.5), (3.0, 0.0)):
        condition = student.condition(labels, None, torch.full((4,), w), torch.full((4,), level))
        torch.testing.assert_close(student.unet(x, t, class_labels=condition).sample, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_the_student_samples_in_one_unet_pass_per_step(steps, unet_calls):
    student = tiny_student(tiny_teacher())
    samples = generate(student, ["Bag", "Sneaker"], per_label=3, steps=steps)
    assert len(unet_calls) == steps and samples.images.shape == (6, 1, 28, 28)
    assert samples.settings.guidance == 2.0


def test_the_students_w_changes_its_images_and_its_default_is_its_four_step_schedule():
    student = tiny_student(tiny_teacher())
    default = generate(student, ["Bag"], per_label=2)
    assert default.settings.timesteps == tuple(SCHEDULES["4"]) and default.settings.sampler == "ddim"
    other_w = generate(student, ["Bag"], per_label=2, guidance=3.0)
    assert not torch.allclose(default.images, other_w.images)
    again = generate(student, ["Bag"], per_label=2, steps=4)  # the same schedule asked for by its count
    torch.testing.assert_close(again.images, default.images, rtol=0, atol=0)


@pytest.mark.parametrize("call,match", [
    (dict(num_inference_steps=3), r"num_inference_steps must be one of \[1, 2, 4\]"),
    (dict(timesteps=[99, 50]), r"timesteps \[99, 50\] are not a schedule"),
    (dict(guidance_scale=5.0), r"guidance_scale must be in \[1, 3\]"),
    (dict(guidance_scale=0.0), r"guidance_scale must be in \[1, 3\]"),
    (dict(guidance_interval=(0.0, 1.0)), r"guidance_interval must be \[0.17, 0.88\]"),
    (dict(guidance_rescale=0.5), "guidance_rescale must be 0"),
])
def test_bad_input_to_a_student_is_one_line_before_any_unet_call(call, match, unet_calls):
    student = tiny_student(tiny_teacher())
    with pytest.raises(ValueError, match=match) as error:
        student(class_labels="Bag", **call)
    assert "\n" not in str(error.value) and not unet_calls


def test_another_sampler_for_a_student_is_refused_for_its_sampler_not_for_that_samplers_step_count(unet_calls):
    student = tiny_student(tiny_teacher())
    with pytest.raises(ValueError, match="samples with the DDIM update it was distilled for.*got UniPCMultistep"):
        generate(student, ["Bag"], 1, sampler="unipc")  # unipc's own default is 10 steps, not a student schedule
    student.scheduler = make_scheduler("unipc", student.scheduler.config)
    with pytest.raises(ValueError, match="samples with the DDIM update it was distilled for"):
        student(class_labels="Bag")
    assert not unet_calls


def test_generate_on_the_command_line_makes_eight_bags_in_four_passes(student_saved, tmp_path, capsys, unet_calls):
    out = tmp_path / "bags.png"
    code, text = run_cli(["generate", "--model", str(student_saved), "--class", "Bag", "--num", "8", "--out", str(out)],
                         capsys)
    assert code == 0 and out.is_file(), text
    assert len(unet_calls) == 4  # 8 images in one batch: 4 steps, one pass each
    code, text = run_cli(["generate", "--model", str(student_saved), "--class", "Bag", "--steps", "3"], capsys)
    assert code == 2 and "num_inference_steps must be one of [1, 2, 4]" in text


def test_synthesize_makes_a_dataset_with_the_student(student_saved, tmp_path, capsys, unet_calls):
    out = tmp_path / "syn"
    code, text = run_cli(["synthesize", "--model", str(student_saved), "--per-class", "2", "--classes", "Bag", "--steps",
                          "1", "--out", str(out), "--no-progress"], capsys)
    assert code == 0, text
    manifest = json.loads((out / "synthesize.json").read_text())
    assert manifest["settings"]["sampler"] == "ddim" and manifest["settings"]["num_inference_steps"] == 1, manifest
    assert len(unet_calls) == 1  # 2 bags in one batch, one step of one pass


def test_a_saved_student_names_the_student_classes_and_loads_as_them(student_saved, tmp_path):
    index = json.loads((student_saved / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_fashion_ddpm", "FashionDDPMStudentPipeline"]
    assert index["condition_encoder"] == ["condition_encoder", "FashionStudentConditionEncoder"]
    loaded = FashionDDPMPipeline.from_pretrained(student_saved)  # the class the folder holds, whichever is asked
    assert type(loaded) is FashionDDPMStudentPipeline and type(loaded.condition_encoder) is FashionStudentConditionEncoder
    tiny_teacher().save_pretrained(tmp_path / "teacher")
    with pytest.raises(ValueError, match="holds a class or style model; load it with FashionDDPMPipeline"):
        FashionDDPMStudentPipeline.from_pretrained(tmp_path / "teacher")
    with pytest.raises(ValueError, match="FashionDDPMPipeline got a FashionStudentConditionEncoder"):
        FashionDDPMPipeline(loaded.unet, loaded.scheduler, condition_encoder=loaded.condition_encoder)


@pytest.mark.slow  # a fresh interpreter
def test_a_saved_student_loads_without_this_package(student_saved, tmp_path):
    expected = generate(FashionDDPMPipeline.from_pretrained(student_saved), ["Dress", "Bag"], seed=3).images
    shown = sample_without_this_package(student_saved, "generator=[torch.Generator().manual_seed(s) for s in "
                                        "(3 + 3_000_000, 3 + 8_000_000)]", expected, tmp_path)
    assert "SAME True" in shown and "PACKAGE False" in shown


@pytest.mark.parametrize("values,match", [
    ({"grid_step": 12}, r"unknown config key\(s\) \['grid_step'\]"),
    ({"student_steps": [5]}, "config key 'student_steps' must be distinct ints >= 1 dividing grid_steps"),
    ({"default_steps": 3}, r"config key 'default_steps' must be one of student_steps \[1, 2, 4\]"),
    ({"guidance_values": [2.0]}, "needs at least two weights"),
    ({"max_train_steps": 0}, "config key 'max_train_steps' must be >= 1"),
    ({"learning_rate": "fast"}, "config key 'learning_rate' must be float"),
    ({"step_weights": [1, 2]}, r"config key 'step_weights' must be 3 finite numbers > 0 \(one per student_steps entry"),
    ({"step_weights": [1, 0, 2]}, "config key 'step_weights' must be 3 finite numbers > 0"),
    ({"method": "lcm"}, r"config key 'method' must be one of \['trajectory', 'consistency', 'tuning'\], got 'lcm'"),
    ({"method": "consistency", "step_weights": [1, 1, 1]}, "config key 'step_weights' applies to method 'trajectory'"),
    ({"method": "tuning", "step_weights": [1, 1, 1]}, "config key 'step_weights' applies to method 'trajectory'"),
    ({"tuning_halvings": -1}, "config key 'tuning_halvings' must be >= 0"),
])
def test_distill_config_errors_are_one_line(values, match):
    with pytest.raises(ValueError, match=match):
        validate(values)


def test_step_weights_set_how_often_each_step_count_is_drawn_and_follow_their_step_counts():
    from pipeline.training.distill import PairSampler

    config = validate({"student_steps": [4, 1, 2], "step_weights": [6, 1, 1]})
    assert config.student_steps == [1, 2, 4] and config.step_weights == [1.0, 1.0, 6.0]
    _, picks = PairSampler(config, 100, {}).draw(4000, 10, torch.Generator().manual_seed(0))
    shares = torch.bincount(picks[:, 4], minlength=3) / 4000
    assert torch.allclose(shares, torch.tensor([0.125, 0.125, 0.75]), atol=0.03), shares
    assert set(picks[picks[:, 4] == 2][:, 2].tolist()) == {99, 74, 49, 24}  # a 4-step pair starts on its schedule
    _, even = PairSampler(validate({}), 100, {}).draw(3000, 10, torch.Generator().manual_seed(0))
    assert torch.allclose(torch.bincount(even[:, 4]) / 3000, torch.full((3,), 1 / 3), atol=0.03)


def test_a_stage_on_more_trajectories_of_the_same_family_counts_them_once_and_other_plans_add_up():
    from pipeline.training.distill import cumulative_stats

    def stats(updates, trajectories, seconds):
        return {"updates": updates, "pairs_seen": updates * 8, "wall_time_s": 10.0 * updates, "final_loss": 0.1,
                "trajectories": trajectories, "trajectory_time_s": seconds}

    earlier = validate({"trajectories_per_class": 160})
    prior = {"config": {**earlier.__dict__}, "stats": stats(1000, 8000, 1300.0)}
    grown = cumulative_stats(prior, stats(500, 16000, 2700.0), validate({"trajectories_per_class": 320}))
    # the first 160 per class are the same tensors (the seed rule): the larger set and its time, once
    assert (grown["trajectories"], grown["trajectory_time_s"], grown["updates"]) == (16000, 2700.0, 1500)
    assert [(s["updates"], s.get("trajectories")) for s in grown["stages"]] == [(1000, 8000), (500, 16000)]
    other = cumulative_stats(prior, stats(500, 8000, 1400.0), validate({"trajectory_seed": 7}))
    assert (other["trajectories"], other["trajectory_time_s"]) == (16000, 2700.0)  # other images: both sets


def test_a_consistency_students_pairs_are_the_links_of_its_chain_and_its_target_level_is_always_the_image():
    from pipeline.training.distill import PairSampler

    sampler = PairSampler(validate({"method": "consistency"}), 100, {})
    # recorded grid positions 0, 3, 6, 9, 12 (the clean image): one link each, for 1, 2 and 4 steps alike
    assert [(t_from, t_to) for [(_, _, t_from, t_to)] in sampler.pairs] == [(99, 74), (74, 49), (49, 24), (24, -1)]
    assert sampler.names == ["from_t99", "from_t74", "from_t49", "from_t24"]
    encoder = FashionStudentConditionEncoder(11, 32, guidance_range=[1.0, 3.0], step_schedules=SCHEDULES, consistency=True)
    torch.nn.init.normal_(encoder.distill_mlp[-1].weight)
    labels, w = torch.tensor([1, 2]), torch.full((2,), 2.0)
    torch.testing.assert_close(encoder(labels, guidance=w, target=torch.full((2,), 0.5)),
                               encoder(labels, guidance=w, target=torch.zeros(2)), rtol=0, atol=0)


def test_the_consistency_target_is_the_students_own_image_from_the_next_state_and_the_image_after_the_last():
    from pipeline.training.distill import alpha_sigma, build_student, predicted_images

    teacher = tiny_teacher()
    config = validate({"method": "consistency", "guidance_values": [1, 2]})
    torch.manual_seed(0)
    student = build_student(teacher, config)
    torch.nn.init.normal_(student.encoder.distill_mlp[-1].weight, std=0.5)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([49, -1])
    classes, w = torch.tensor([3, 4]), torch.tensor([1.0, 2.0])
    images = predicted_images(student, x, t, classes, w, teacher.scheduler.alphas_cumprod)
    torch.testing.assert_close(images[1], x[1], rtol=0, atol=0)  # after the last link: the teacher's image itself
    v = student(x[:1], t[:1], classes[:1], guidance=w[:1], target=torch.zeros(1))
    a, s = alpha_sigma(teacher.scheduler.alphas_cumprod, t[:1])
    torch.testing.assert_close(images[0], (a * x[0] - s * v[0]), rtol=1e-5, atol=1e-5)


def test_the_distill_command_rejects_a_bad_key_before_loading_anything(capsys, unet_calls):
    code, text = run_cli(["distill", "--config", "configs/distill.yaml", "grid_steps=7"], capsys)
    assert code == 2 and "config key 'student_steps' must be distinct ints >= 1 dividing grid_steps (7)" in text
    assert not unet_calls


TINY_RUN = ["trajectories_per_class=2", "shard_per_class=1", "guidance_values=[1, 2]", "max_train_steps=4",
            "train_batch_size=8", "log_every_steps=2", "checkpointing_steps=2", "sample_images_per_class=1"]


@pytest.mark.slow  # two short distillation runs of a tiny teacher
def test_distill_exports_a_student_and_a_resumed_run_ends_bit_identical(tmp_path):
    from pipeline.training.distill import distill

    tiny_teacher().save_pretrained(tmp_path / "teacher")
    config = load_config("configs/distill.yaml", [f"teacher={tmp_path / 'teacher'}", f"output_dir={tmp_path / 'a'}",
                                                  *TINY_RUN])
    folder = distill(config)
    student = FashionDDPMPipeline.from_pretrained(folder)
    assert student.is_distilled and student.condition_encoder.config.step_schedules == SCHEDULES
    assert student.condition_encoder.config.guidance_range == [1.0, 2.0]
    assert (folder / "samples" / "final.png").is_file() and (folder / "samples" / "loss_curve.png").is_file()
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and all(r["loss"] > 0 for r in rows)
    per_steps = [v for r in rows for k, v in r.items() if k.startswith("loss_") and k.endswith("_steps")]
    assert per_steps and all(v > 0 for v in per_steps)  # each step count's own loss, for the ones drawn
    card = (folder / "README.md").read_text()
    assert "4 updates" in card  # the student's card: the same template as every card (use block, sections, limits)
    assert all(part in card for part in ("<!-- use:start -->", "## Distillation", "<!-- metrics:start -->", "## Limitations"))
    shards = sorted((folder / "trajectories").glob("w*.pt"))
    assert len(shards) == 4  # 2 weights x 2 shards of one image per class
    # a run SIGKILLed once its update-2 checkpoint exists, resumed, ends where the uninterrupted run did; the shards
    # it finished are reused, a shard killed mid-write is ignored
    shutil.copytree(folder / "trajectories", tmp_path / "b" / "trajectories")
    (tmp_path / "b" / "trajectories" / ".tmp-w1_000005.pt").write_bytes(b"half a shard")
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "b" / "trajectories").glob("w*.pt")}
    run_b = [f"teacher={tmp_path / 'teacher'}", f"output_dir={tmp_path / 'b'}", *TINY_RUN]
    sigkill_when_exists([sys.executable, "-m", "pipeline.cli", "distill", "--config", "configs/distill.yaml", *run_b],
                        tmp_path / "b" / "checkpoints" / "checkpoint-2", dict(os.environ), REPO)
    assert not (tmp_path / "b" / "unet").exists()  # killed before its export
    resumed = distill(load_config("configs/distill.yaml", run_b), "latest")
    assert {p.name: p.stat().st_mtime_ns for p in (resumed / "trajectories").glob("w*.pt")} == stamps  # reused
    again = FashionDDPMPipeline.from_pretrained(resumed)
    for a, b in zip(student.unet.state_dict().values(), again.unet.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # killed after its last checkpoint, before its export: resuming exports the same student, no update more
    shutil.rmtree(resumed / "unet")
    (resumed / "README.md").unlink()
    exported = FashionDDPMPipeline.from_pretrained(distill(load_config("configs/distill.yaml", run_b), "latest"))
    for a, b in zip(student.unet.state_dict().values(), exported.unet.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    last = json.loads((resumed / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 4 and f"final loss {last['loss']:.4f}" in (resumed / "README.md").read_text()
    # a second stage trains on from the first's student: its weights start there, its cost adds to the first's
    stage_2 = distill(load_config("configs/distill.yaml", [
        f"teacher={tmp_path / 'teacher'}", f"output_dir={tmp_path / 'd'}", f"trajectories_dir={folder / 'trajectories'}",
        f"init_student={folder}", *TINY_RUN, "max_train_steps=2", "learning_rate=0.0001"]))
    first, second = (json.loads((f / "distill.json").read_text())["stats"] for f in (folder, stage_2))
    assert second["updates"] == 6 and second["pairs_seen"] == first["pairs_seen"] + 2 * 8
    assert second["trajectory_time_s"] == first["trajectory_time_s"]  # the same trajectories, counted once
    assert [(s["updates"], s["learning_rate"], s["init_student"]) for s in second["stages"]] == [
        (4, 2e-4, None), (2, 1e-4, str(folder))]
    assert "Stage 2: 2 updates at learning rate 0.0001 on 40 trajectories from" in (stage_2 / "README.md").read_text()
    moved = FashionDDPMPipeline.from_pretrained(stage_2).unet.state_dict()
    assert any(not torch.equal(a, moved[k]) for k, a in student.unet.state_dict().items())
    # trajectories of another teacher are refused, not mixed in
    tiny_teacher(seed=5).save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="holds trajectories of"):
        distill(load_config(None, [f"teacher={tmp_path / 'other'}", f"output_dir={tmp_path / 'c'}",
                                   f"trajectories_dir={folder / 'trajectories'}", *TINY_RUN]))


@pytest.mark.slow  # a short distillation run of a tiny teacher
def test_a_consistency_run_exports_a_student_that_samples_in_one_pass_per_step_and_logs_each_links_loss(tmp_path,
                                                                                                     unet_calls):
    from pipeline.training.distill import distill

    tiny_teacher().save_pretrained(tmp_path / "teacher")
    folder = distill(load_config(None, [f"teacher={tmp_path / 'teacher'}", f"output_dir={tmp_path / 'cd'}",
                                        "method=consistency", *TINY_RUN]))
    student = FashionDDPMPipeline.from_pretrained(folder)
    assert student.is_distilled and student.condition_encoder.config.consistency
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert {k for r in rows for k in r if k.startswith("loss_")} <= {f"loss_from_t{t}" for t in (99, 74, 49, 24)}
    assert "method `consistency`" in (folder / "README.md").read_text()
    unet_calls.clear()
    generate(student, ["Bag"], per_label=2, steps=2)
    assert len(unet_calls) == 2
    with pytest.raises(ValueError, match="has consistency False, but this config makes True"):
        distill(load_config(None, [f"teacher={tmp_path / 'teacher'}", f"output_dir={tmp_path / 'x'}", "method=consistency",
                                   f"init_student={_trajectory_student(tmp_path)}", *TINY_RUN]))


def _trajectory_student(tmp_path):
    """A saved tiny trajectory student of tests' tiny teacher with TINY_RUN's w range (for init_student checks)."""
    from pipeline.training.distill import build_student, student_pipeline

    teacher = FashionDDPMPipeline.from_pretrained(tmp_path / "teacher")
    config = load_config(None, [f"teacher={tmp_path / 'teacher'}", *TINY_RUN])
    student_pipeline(teacher, config, build_student(teacher, config)).save_pretrained(tmp_path / "ts")
    (tmp_path / "ts" / "distill.json").write_text(json.dumps({"config": {"teacher": str(tmp_path / "teacher")}}))
    return tmp_path / "ts"


def test_a_second_stage_needs_a_student_of_the_same_teacher_and_schedules_before_any_trajectory(tmp_path, student_saved,
                                                                                               unet_calls):
    from pipeline.training.distill import distill

    tiny_teacher().save_pretrained(tmp_path / "teacher")
    base = [f"teacher={tmp_path / 'teacher'}", f"output_dir={tmp_path / 'run'}", *TINY_RUN]
    with pytest.raises(ValueError, match=r"init_student '.*teacher' is not a distilled student"):
        distill(load_config(None, [*base, f"init_student={tmp_path / 'teacher'}"]))
    shutil.copytree(student_saved, tmp_path / "student")
    (tmp_path / "student" / "distill.json").write_text(json.dumps({"config": {"teacher": str(tmp_path / "teacher")}}))
    with pytest.raises(ValueError, match=r"has guidance_range \[1.0, 3.0\], but this config makes \[1.0, 2.0\]"):
        distill(load_config(None, [*base, f"init_student={tmp_path / 'student'}"]))
    assert not (tmp_path / "run").exists() and not unet_calls


def test_a_student_takes_only_the_ddim_update(unet_calls):
    student = tiny_student(tiny_teacher())
    with pytest.raises(ValueError, match="samples with the DDIM update it was distilled for"):
        generate(student, ["Bag"], 1, sampler="dpm++", steps=4)
    assert not unet_calls


def test_the_demo_refuses_what_a_student_cannot_do_before_any_work(unet_calls):
    from pipeline.demo.requests import DemoInputError, check_request

    student = tiny_student(tiny_teacher())
    assert check_request(student, ["Bag"], 2, "ddim", 2, 1.5, 0)["settings"].steps == 2
    for sampler, steps, guidance, match in (("ddim", 3, 2, "must be one of \\[1, 2, 4\\]"), ("ddim", 4, 6, "in \\[1, 3\\]"),
                                            ("unipc", 4, 2, "samples with the DDIM update it was distilled for")):
        with pytest.raises(DemoInputError, match=match):
            check_request(student, ["Bag"], 2, sampler, steps, guidance, 0)
    assert not unet_calls


def test_a_students_fingerprint_covers_its_condition_encoder():
    from pipeline.synthesis import model_fingerprint

    student = tiny_student(tiny_teacher())
    before = model_fingerprint(student)
    with torch.no_grad():
        student.condition_encoder.distill_mlp[-1].weight.add_(1.0)  # the encoder alone changes the images
    assert model_fingerprint(student) != before


def tiny_style_teacher() -> FashionDDPMPipeline:
    """A tiny style model with a live style path (its request changes the images), the teacher's sampling defaults."""
    from pipeline.condition_encoder import FashionConditionEncoder

    torch.manual_seed(0)
    tables = {a: [[0.0, 1.0, 2.0]] * 10 for a in ("width", "pattern")}
    encoder = FashionConditionEncoder(11, 4 * TINY_UNET["block_out_channels"][0], ["width", "pattern"], 8,
                                      [0.0, 0.5, 1.0], tables)
    torch.nn.init.normal_(encoder.style_mlp[-1].weight, std=0.5)
    base = FashionDDPMPipeline.from_config_dict(unet=TINY_UNET, condition_encoder=encoder)
    pipe = FashionDDPMPipeline(base.unet, make_scheduler("unipc", base.scheduler.config), default_guidance_scale=2.0,
                               default_num_inference_steps=4, default_guidance_interval=INTERVAL, condition_encoder=encoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_a_style_teachers_untrained_student_is_its_conditional_model_with_the_style():
    from pipeline.training.distill import build_student

    teacher = tiny_style_teacher()
    student = build_student(teacher, validate({"guidance_values": [1, 3], "distill_hidden_dim": 16}))
    assert student.encoder.style_attributes == ["width", "pattern"]
    x, t, labels = torch.randn(2, 1, 28, 28), torch.tensor(74), torch.tensor([3, 8])
    values, given = torch.tensor([[0.9, 0.0], [0.1, 0.7]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    with torch.no_grad():
        expected = teacher.unet(x, t, class_labels=teacher.condition_encoder(labels, values, given)).sample
        got = student(x, t, labels, values, given, guidance=torch.full((2,), 2.0), target=torch.full((2,), 0.5))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


@pytest.mark.slow  # a short distillation run of a tiny style teacher
def test_a_style_teacher_distils_into_a_student_that_takes_the_style(tmp_path):
    from pipeline.training.distill import distill, load_trajectories

    tiny_style_teacher().save_pretrained(tmp_path / "teacher")
    config = load_config("configs/distill.yaml", [f"teacher={tmp_path / 'teacher'}", f"output_dir={tmp_path / 's'}",
                                                  *TINY_RUN])
    folder = distill(config)
    data = load_trajectories(config)
    assert data["style_values"].shape == data["style_given"].shape == (len(data["seeds"]), 2)
    assert 0 < data["style_given"].mean() < 1  # shards asked for different subsets of the attributes
    student = FashionDDPMPipeline.from_pretrained(folder)
    assert type(student) is FashionDDPMStudentPipeline and student.style_attributes == ["width", "pattern"]
    kwargs = {"class_labels": ["Dress"], "output_type": "pt", "generator": [torch.Generator().manual_seed(1)]}
    wide, narrow = student(style="width=0.9", **kwargs).images, student(style="width=0.1", **kwargs).images
    assert not torch.equal(wide, narrow)  # the request reaches the student


def test_the_tuning_gap_starts_at_the_clean_image_and_halves_evenly_over_the_run():
    from pipeline.training.distill.tuning import earlier_timesteps, gap_fraction

    assert [gap_fraction(p, 3) for p in (0, 0.24, 0.25, 0.5, 0.74, 0.75, 1.0)] == [1, 1, 0.5, 0.25, 0.25, 0.125, 0.125]
    t = torch.tensor([0, 24, 49, 99])
    assert earlier_timesteps(t, 1.0).tolist() == [-1, -1, -1, -1]
    assert earlier_timesteps(t, 0.5).tolist() == [-1, 12, 24, 49]  # at least one step: t = 0 goes to the image
    assert earlier_timesteps(t, 0.001).tolist() == [-1, 23, 48, 98]


def test_a_tuning_pair_is_the_teachers_guided_step_from_a_noised_training_image(tmp_path):
    """Groups of images share a timestep and a w; the teacher's step to r = -1 is its guided image prediction, at the
    group's own w and only inside its guidance interval."""
    from conftest import write_idx_folder
    from pipeline.training.distill.tuning import TEACHER_GROUP, TuningPairs

    teacher = tiny_teacher()
    config = validate({"method": "tuning", "guidance_values": [1, 3], "grid_steps": 4,
                       "data_dir": str(write_idx_folder(tmp_path / "idx"))})
    pairs = TuningPairs(teacher, config)
    assert len(pairs) == 64 and pairs.starts.tolist() == [99, 74, 49, 24]
    batch = pairs.draw(2 * TEACHER_GROUP, torch.Generator().manual_seed(0), progress=0.0)
    for key in ("t", "guidance", "kinds"):
        first, second = batch[key].split(TEACHER_GROUP)
        assert (first == first[0]).all() and (second == second[0]).all()
    assert (batch["r"] == -1).all() and ((batch["guidance"] >= 1) & (batch["guidance"] <= 3)).all()
    alphas = teacher.scheduler.alphas_cumprod
    x = torch.randn(2 * TEACHER_GROUP, 1, 28, 28)
    landed = pairs.teacher_step(x, batch, alphas)
    for first in (0, TEACHER_GROUP):
        part, t, w = slice(first, first + TEACHER_GROUP), batch["t"][first], float(batch["guidance"][first])
        low, high = INTERVAL
        w = w if low <= (float(t) + 1) / 100 <= high else 1.0
        with torch.no_grad():
            v = teacher.guided_prediction(x[part], t, batch["classes"][part], w)
        a, s = (u.item() for u in (alphas[t].sqrt(), (1 - alphas[t]).sqrt()))
        torch.testing.assert_close(landed[part], a * x[part] - s * v, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # a short tuning run of a tiny style teacher
def test_a_tuning_run_of_a_style_teacher_exports_a_consistency_student_without_trajectories(tmp_path, unet_calls):
    from conftest import write_idx_folder
    from pipeline.training.distill import distill

    tiny_style_teacher().save_pretrained(tmp_path / "teacher")
    folder = distill(load_config(None, [f"teacher={tmp_path / 'teacher'}", f"output_dir={tmp_path / 'tuned'}",
                                        "method=tuning", "tuning_halvings=1", "train_batch_size=32",
                                        f"data_dir={write_idx_folder(tmp_path / 'idx')}", *TINY_RUN[2:]]))
    assert not (folder / "trajectories").exists()
    student = FashionDDPMPipeline.from_pretrained(folder)
    assert student.is_distilled and student.condition_encoder.config.consistency
    assert student.style_attributes == ["width", "pattern"]
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert {k for r in rows for k in r if k.startswith("loss_")} <= {"loss_schedule_starts", "loss_any_t"}
    record = json.loads((folder / "distill.json").read_text())
    assert record["stats"]["trajectories"] == 0 and record["config"]["method"] == "tuning"
    assert "no stored trajectories" in (folder / "README.md").read_text()
    unet_calls.clear()
    generate(student, ["Bag"], per_label=2, steps=4)
    assert len(unet_calls) == 4
