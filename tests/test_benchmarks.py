"""The benchmarks (`python -m benchmarks.NAME`): they run, write JSON + Markdown with the command and the machine, and
report sane numbers; their command lines answer without torch."""

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import heavy_modules_after

pytestmark = pytest.mark.slow  # subprocesses running the benchmark scripts

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ("sampling_speed", "train_throughput")
BENCHMARKS = ("allocator", "best_of_n", "clip_loss", "demo_latency", "distill_holdout", "fashion_clip",
              "fid_protocol", "few_passes", "loss_by_noise", "loss_match", "quality_vs_steps", "recipe_compare",
              "sampler_timing", "sampling_speed", "step_schedule", "style_control", "style_convergence",
              "synthesize_memory", "synthetic_data", "train_throughput")


def _bench(name: str, *args: str) -> list[str]:
    """The command that runs benchmark `name` (from the repository root)."""
    return [sys.executable, "-m", f"benchmarks.{name}", *args]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_every_benchmark_is_a_module_whose_help_needs_no_torch():
    not_benchmarks = ("__init__", "harness", "report", "tables")
    assert sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if p.stem not in not_benchmarks) == sorted(BENCHMARKS)
    heavy, _ = heavy_modules_after("import benchmarks.harness")
    assert heavy == []
    for name in BENCHMARKS:
        heavy, printed = heavy_modules_after(f"from benchmarks.{name} import main\nmain(['--help'])")
        assert heavy == [] and f"python -m benchmarks.{name}" in printed, name
        assert "--threads" in printed and "--out" in printed, name


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """Runs both smoke benchmarks at once (one torch thread each, so they share two cores) and loads their JSON."""
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    procs = {name: subprocess.Popen(_bench(name, "--smoke", "--threads", "1", "--out", str(out)), cwd=REPO, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in SCRIPTS}
    results = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, f"{name}: {stderr[-3000:]}"
        assert "| variant |" in stdout  # the Markdown table is printed too
        results[name] = json.loads((out / f"{name}.json").read_text())
        md = (out / f"{name}.md").read_text()
        assert md.startswith("#") and "| variant |" in md and "cpu_model" in md
        command = shlex.join(["python", "-m", f"benchmarks.{name}", "--smoke", "--threads", "1", "--out", str(out)])
        assert results[name]["command"] == command and f"Reproduce: `{command}`" in md
    return results


def _check_machine(machine: dict):
    for key in ("cpu_model", "cpu_count", "torch_version", "torch_threads", "diffusers_version", "date"):
        assert machine.get(key), key
    assert machine["torch_threads"] == 1
    assert all(isinstance(machine[k], float) for k in ("load_average_1m_at_start", "load_average_1m_at_end"))
    if Path("/proc/stat").is_file():  # Linux: the hypervisor's share of the run's CPU time
        assert 0 <= machine["cpu_steal_share"] <= 1


def test_sampling_speed_smoke(smoke_results):
    r = smoke_results["sampling_speed"]
    assert r["benchmark"] == "sampling_speed" and r["smoke"] is True
    _check_machine(r["machine"])
    assert set(r["results"]) == {"pipeline", "reference_two_pass", "unet_floor"}
    steps, batch = r["settings"]["steps"], r["settings"]["batch"]
    for name, v in r["results"].items():
        for key in ("median_s", "images_per_s", "ms_per_step"):
            assert _positive(v[key]), (name, key, v[key])
        assert len(v["times_s"]) == r["settings"]["rounds"] and all(_positive(t) for t in v["times_s"])
    assert r["results"]["reference_two_pass"]["unet_calls"] == 2 * steps
    assert r["results"]["pipeline"]["unet_batch"] == r["results"]["unet_floor"]["unet_batch"] == 2 * batch
    for key in ("pipeline_over_floor_time", "reference_over_pipeline_time"):
        assert _positive(r["ratios"][key]), key
    diff = r["max_abs_diff_pipeline_vs_reference"]
    assert isinstance(diff, float) and 0 <= diff < 1e-4


def test_train_throughput_smoke(smoke_results):
    r = smoke_results["train_throughput"]
    assert r["benchmark"] == "train_throughput" and r["smoke"] is True
    _check_machine(r["machine"])
    assert set(r["results"]) == {"project", "reference"}
    for name, v in r["results"].items():
        for key in ("images_per_s", "s_per_update", "peak_rss_mb"):
            assert _positive(v[key]), (name, key, v[key])
        assert all(_positive(x) for x in v["per_round_images_per_s"])
        assert all(math.isfinite(x) for x in v["final_losses"])
    for key in ("project_over_reference_images_per_s", "project_over_reference_peak_rss"):
        assert _positive(r["ratios"][key]), key
    assert r["settings"]["unet_parameters"] > 0 and r["settings"]["batch"] > 0 and isinstance(r["settings"]["seed"], int)


@pytest.mark.needs_data  # the floors and references are real images
def test_fid_protocol_smoke_measures_fid_against_train_and_test_and_extrapolates_and_resumes(tmp_path):
    def run():
        return subprocess.run(_bench("fid_protocol", "--smoke", "--threads", "1", "--out", str(tmp_path), "--work-dir",
                                     str(tmp_path / "work")), cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    result = run()
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads((tmp_path / "fid_protocol_smoke.json").read_text())
    for key in ("fid_vs_train", "fid_vs_test", "floor_vs_train", "floor_vs_test", "fid_infinity"):
        assert math.isfinite(r[key]), key
    assert list(r["fid_at_n"]) == ["20", "30", "40"] and r["fid_at_n"]["40"] == pytest.approx(r["fid_vs_test"])
    shards = sorted((tmp_path / "work").rglob("features_*.npz"))
    assert len(shards) == 2  # 40 images in shards of 20
    again = run()  # the kept shards are used, not generated again
    assert again.returncode == 0 and "of each class in" not in again.stdout
    assert json.loads((tmp_path / "fid_protocol_smoke.json").read_text())["fid_vs_test"] == r["fid_vs_test"]


def test_fid_infinity_is_the_intercept_of_the_line_in_one_over_n():
    from benchmarks.fid_protocol import fid_infinity

    intercept, slope = fid_infinity([1000, 2000, 5000], [10 + 4000 / n for n in (1000, 2000, 5000)])
    assert intercept == pytest.approx(10) and slope == pytest.approx(4000)


@pytest.mark.needs_data  # the floors need real images
def test_quality_vs_steps_smoke(tmp_path):
    result = subprocess.run(_bench("quality_vs_steps", "--smoke", "--threads", "1", "--out", str(tmp_path)), cwd=REPO,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads((tmp_path / "quality_vs_steps.json").read_text())
    assert [(row["sampler"], row["steps"], row["guidance"]) for row in r["rows"]] == [("ddpm", 3, 4.0), ("dpm++", 2, 1.0),
                                                                                      ("dpm++", 2, 3.0)]
    assert r["rows"][2]["guidance_interval"] == [0.2, 0.8] and r["rows"][2]["guidance_rescale"] == 0.5
    for row in r["rows"]:
        assert _positive(row["time_per_image_s"]) and _positive(row["judge_fid"]) and _positive(row["judge_fid_floor"])
        assert 0 <= row["judge_accuracy"] <= 1 and row["judge_accuracy_floor"] > 0.5
    # rows are named by what they ran: the tiny model has no interval of its own, so w = 4 guided every step
    assert [row["setting"] for row in r["rows"]] == ["ddpm:3:4:i=0-1", "dpm++:2:1", "dpm++:2:3:i=0.2-0.8:r=0.5"]
    assert r["rows"][0]["speedup_vs_base"] == 1.0
    assert r["benchmark"] == "quality_vs_steps" and r["command"].startswith("python -m benchmarks.quality_vs_steps --smoke")
    assert "| setting |" in (tmp_path / "quality_vs_steps.md").read_text()


def test_quality_base_from_mismatch_fails_before_any_work(tmp_path):
    earlier = tmp_path / "base.json"
    earlier.write_text(json.dumps({"num_per_class": 20, "seed": 0, "rows": [{"model": "pretrained/other"}]}))
    result = subprocess.run(_bench("quality_vs_steps", "--base-from", str(earlier), "--num-per-class", "5", "--out",
                                   str(tmp_path / "out")), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "does not match this run" in result.stderr and "num_per_class 20 vs 5" in result.stderr
    assert not (tmp_path / "out").exists()


def test_sampler_timing_runs_every_sampler_in_every_round(tiny_saved, tmp_path):
    result = subprocess.run(_bench("sampler_timing", "--model", str(tiny_saved), "--batch", "10", "--rounds", "2", "--threads",
                                   "1", "--out", str(tmp_path)), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    r = json.loads((tmp_path / "sampler_timing.json").read_text())
    assert [row["setting"] for row in r["rows"]] == ["ddpm:100", "dpm++:20", "unipc:10", "dpm++:10"]
    assert all(len(row["rounds"]) == 2 and _positive(row["seconds_per_image"]) for row in r["rows"])
    assert r["rows"][0]["speedup_vs_ddpm100"] == 1.0 and r["seeds"] == [0, 1]
    assert r["command"] == shlex.join(["python", "-m", "benchmarks.sampler_timing", "--batch", "10", "--rounds", "2",
                                       "--threads", "1", "--model", str(tiny_saved)])
    bad = subprocess.run(_bench("sampler_timing", "--batch", "15"), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--batch must be a multiple of 10 (got 15)" in bad.stderr


@pytest.mark.needs_data  # training data and the judge's reference
def test_style_convergence_smoke(tmp_path):
    from benchmarks.style_convergence import main

    r = main(["--smoke", "--threads", "1", "--out", str(tmp_path), "--work-dir", str(tmp_path / "runs")])
    assert json.loads((tmp_path / "style_convergence.json").read_text())["smoke"] is True
    assert (tmp_path / "style_convergence.png").stat().st_size > 0
    assert [run["name"] for run in r["runs"]] == ["class only", "class + style"]
    assert r["runs"][1]["style_attributes"] and not r["runs"][0]["style_attributes"]
    for run in r["runs"]:  # both runs: the same updates, a judge-FID beside its floor at every checkpoint
        assert [e["step"] for e in run["evaluations"]] == [4, 8] and run["loss"][-1]["step"] == 8
        assert all(_positive(e["judge_fid"]) and _positive(e["judge_fid_floor"]) for e in run["evaluations"])


@pytest.mark.needs_data  # the real test images are the leakage reference
def test_style_control_smoke(tmp_path):
    from benchmarks.style_control import main

    r = main(["--smoke", "--threads", "1", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "style_control.json").read_text())["smoke"] is True
    assert [row["attribute"] for row in r["rows"]] == ["width", "height"] and r["num_images"] == 2 * 10 * 3 * 2
    for row in r["rows"]:
        assert len(row["per_class"]) == 10 and 0 <= row["mae"] <= 1 and set(row["leakage_mean_abs"]) == {"width", "height"} - {row["attribute"]}
    # quality and diversity per setting, each beside the same number for as many real images of that level
    assert [(q["attribute"], q["level"]) for q in r["quality"]] == [(a, x) for a in ("width", "height") for x in (0.1, 0.5, 0.9)]
    for q in r["quality"]:
        assert q["num_images"] == 20 and q["reference_images"] == 1000 and 0 <= q["judge_accuracy_floor"] <= 1
        assert q["judge_fid_floor"] < q["judge_fid"] and q["diversity"] > 0 and q["diversity_real"] > 0


def test_recipe_compare_smoke_judges_every_arm_and_reuses_the_shared_run(tmp_path):
    """Two questions on one work folder: the second trains only what it lacks (its own run, a second seed) and re-uses
    the recipe run's seed-0 evaluation; with two seeds each arm is the mean of its seeds."""
    work, out = tmp_path / "work", tmp_path / "out"
    for question, seeds in (("ema", "0"), ("loss_weighting", "0,1")):
        args = ["--question", question, "--seeds", seeds, "--smoke", "--no-inception", "--threads", "1", "--work-dir",
                str(work), "--out", str(out)]
        proc = subprocess.run(_bench("recipe_compare", *args), cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    ema = json.loads((out / "recipe_compare_ema.json").read_text())
    weighting = json.loads((out / "recipe_compare_loss_weighting.json").read_text())
    assert [a["ema_power"] for a in ema["arms"]] == [0.0, 0.6, 0.75, 0.9]  # the recipe's own, read from its run
    assert all(_positive(a["judge_fid"]) and _positive(a["judge_fid_floor"]) for a in ema["arms"] + weighting["arms"])
    assert set(ema["arms"][0]["judge_fid_per_class"]) == set(ema["arms"][0]["judge_accuracy_per_class"])
    assert weighting["seeds"] == [0, 1] and sorted((work / "seed1").iterdir()) == [work / "seed1" / "min-snr", work / "seed1" / "v-mse"]
    recipe = weighting["arms"][0]
    assert [s["seed"] for s in recipe["per_seed"]] == [0, 1]
    assert recipe["per_seed"][0]["judge_fid"] == ema["arms"][2]["judge_fid"]  # the recipe run's seed 0, judged once
    assert recipe["judge_fid"] == pytest.approx(sum(s["judge_fid"] for s in recipe["per_seed"]) / 2)
    assert recipe["judge_fid_per_class"]["Shirt"] == pytest.approx(sum(s["judge_fid_per_class"]["Shirt"] for s in recipe["per_seed"]) / 2)
    assert weighting["runs"] == {"min-snr": ["loss_weighting=min_snr", "snr_gamma=5"], "v-mse": ["loss_weighting=none"]}
    bad = subprocess.run(_bench("recipe_compare", "--question", "ema", "--runs", "nope"), cwd=REPO, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "nope" in bad.stderr and "v-mse" in bad.stderr
    bad = subprocess.run(_bench("recipe_compare", "--question", "ema", "--seeds", "1,1"), cwd=REPO, capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "--seeds" in bad.stderr and "'1,1'" in bad.stderr


def test_loss_match_smoke_finds_a_maths_free_setting_identical_and_names_a_bad_one(tmp_path):
    """log_every_steps changes no maths: from the same seed its losses are bit-identical to the plain loop's (so the
    three runs are comparable), it matches, and the next seed is the non-zero yardstick."""
    proc = subprocess.run(_bench("loss_match", "--smoke", "--threads", "1", "--out", str(tmp_path)), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "loss_match.json").read_text())
    assert r["overrides"] == ["log_every_steps=1"] and r["identical_losses"] is True and r["matched"] is True
    assert r["fast_gap"] == 0 and r["next_seed_gap"] > 0 and [len(r["runs"][k]["losses"]) for k in r["runs"]] == [8, 8, 8]
    assert len(r["window_means"]["plain"]) == 4 and all(_positive(v) for v in r["images_per_s"].values())
    assert "matches the plain loop" in (tmp_path / "loss_match.md").read_text()
    bad = subprocess.run(_bench("loss_match", "--smoke", "--set", "torch_compile=fastest"), cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "torch_compile" in bad.stderr and "fastest" in bad.stderr
    assert "plain:" not in bad.stdout  # named before any run started


@pytest.mark.needs_data
def test_fashion_clip_smoke_measures_the_shipped_clip(tmp_path):
    proc = subprocess.run(_bench("fashion_clip", "--smoke", "--threads", "1", "--out", str(tmp_path)), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "fashion_clip.json").read_text())
    assert r["smoke"] is True and r["clip_model"] == "pretrained/fashion-clip" and r["test_images"] == 200
    assert 0 <= r["prompt_accuracy"] <= 1 and len(r["prompt_accuracy_per_class"]) == 10
    kinds = {(x["degradation"], x["seen_in_training"]) for x in r["quality_auc"]}
    assert kinds == {("pixelate", False), ("jpeg", False), ("salt_pepper", False), ("blur", True), ("noise", True),
                     ("low_contrast", True)} and all(0 <= x["auc"] <= 1 for x in r["quality_auc"])
    assert r["generated"]["num_images"] == 20 and len(r["per_class_quality"]) == 10


def test_best_of_n_selections_keep_the_top_of_each_class_and_group():
    import numpy as np

    from benchmarks.best_of_n import random_select, select

    # 2 classes x 2 groups x pools of 3: flat index = class * 6 + group * 3 + position
    scores = np.array([[0.1, 0.9, 0.5, 0.3, 0.2, 0.8], [1.0, 0.0, 0.0, 0.4, 0.7, 0.7]])
    assert select(scores, 2, 3, 1).tolist() == [1, 5, 6, 10]  # the tie (0.7, 0.7) keeps generation order
    assert select(scores, 2, 3, 2).tolist() == [1, 2, 3, 5, 6, 7, 10, 11]
    picks = random_select(np.random.default_rng(0), 2, 2, 3, 2)
    assert len(picks) == 8 and len(set(picks.tolist())) == 8
    assert [(i // 3) for i in picks.tolist()] == [0, 0, 1, 1, 2, 2, 3, 3]  # two from every class and group


@pytest.mark.needs_data  # the judge's references are real images
def test_best_of_n_smoke_reuses_its_pools_and_refuses_another_models(tmp_path):
    args = ["--smoke", "--threads", "1", "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "pools")]
    first = subprocess.run(_bench("best_of_n", *args), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "groups 0..1:" in first.stdout
    r = json.loads((tmp_path / "out" / "best_of_n.json").read_text())
    assert r["smoke"] is True and (r["groups"], r["pool"], r["keep"]) == (2, 3, 1) and r["kept_images"] == 20
    assert r["pool_images"] == 60 and r["clip_model"] == "pretrained/fashion-clip"
    assert set(r["selections"]) == {"random", "clip", "judge"}
    assert r["selections"]["judge"]["judge_accuracy"] >= r["selections"]["random"]["judge_accuracy"]  # it picks by the judge
    assert 0 <= r["clip_judge_overlap"] <= 1 and _positive(r["floor"]["judge_fid"])
    again = subprocess.run(_bench("best_of_n", *args), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "groups 0..1:" not in again.stdout  # the cached pools, not sampled again
    assert json.loads((tmp_path / "out" / "best_of_n.json").read_text())["selections"] == r["selections"]
    other = subprocess.run(_bench("best_of_n", *args, "--seed", "1"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert other.returncode != 0 and "holds pools of another model, sampling, seed or pool size" in other.stderr


@pytest.mark.needs_data  # CAS and the judge need real images
def test_clip_loss_smoke_trains_both_fine_tunes_at_an_equal_budget(tmp_path):
    args = ["--smoke", "--threads", "1", "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]
    proc = subprocess.run(_bench("clip_loss", *args), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "out" / "clip_loss.json").read_text())
    assert r["smoke"] is True
    assert [a["arm"] for a in r["arms"]] == ["base", "plain fine-tune", "CLIP fine-tune", "CLIP fine-tune λ 0.1"]
    base, plain, clip, strong = r["arms"]
    assert base["updates"] is None and plain["updates"] == clip["updates"] == strong["updates"] == 4
    assert (plain["clip_loss_weight"], clip["clip_loss_weight"], strong["clip_loss_weight"]) == (0.0, 0.01, 0.1)
    assert r["seeds"] == [0, 1] and all([run["seed"] for run in a["per_seed"]] == [0, 1] for a in r["arms"])
    assert plain["per_seed"][0]["final_clip_term"] is None and 0 < clip["per_seed"][0]["final_clip_term"] < 4
    assert clip["judge_fid"] == pytest.approx(sum(run["judge_fid"] for run in clip["per_seed"]) / 2)
    assert sorted(p.name for p in (tmp_path / "work" / "smoke" / "seed1").iterdir() if not p.name.endswith("-eval")) == [
        "CLIP-fine-tune", "CLIP-fine-tune-0.1", "plain-fine-tune"]
    for arm in r["arms"]:
        assert _positive(arm["judge_fid"]) and _positive(arm["judge_fid_floor"])
        assert all(len(run["cas"]["per_seed"]) == 1 for run in arm["per_seed"])
        assert 0 <= arm["clip_agreement"] <= 1 and arm["inception_fid"] is None  # the smoke run skips Inception
    assert 0 < r["floors"]["cas"]["mean"] <= 1
    md = (tmp_path / "out" / "clip_loss.md").read_text()
    assert "At λ = 0.01 the CLIP term" in md and "At λ = 0.1 the CLIP term" in md and "| CLIP fine-tune |" in md
    assert "on 2 seeds)" not in md and " of 2 seeds)" in md
    assert "the same updates without the term moved the base by" in md
    bad = subprocess.run(_bench("clip_loss", "--arms", "base,nope"), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "'nope'" in bad.stderr and "plain fine-tune" in bad.stderr


def test_train_run_reuses_a_finished_identical_run_and_trains_a_changed_one(tmp_path):
    from benchmarks.harness import train_run
    from conftest import TINY_CONFIG, write_idx_folder
    from pipeline.training.config import load_config

    data = write_idx_folder(tmp_path / "idx")

    def config(*more):
        return load_config(str(TINY_CONFIG), [f"data_dir={data}", f"output_dir={tmp_path / 'run'}", "sample_every_steps=0",
                                              "max_train_steps=2", "checkpointing_steps=2", *more])

    folder = train_run(config())
    stamp = (folder / "model_index.json").stat().st_mtime_ns
    assert train_run(config()) == folder and (folder / "model_index.json").stat().st_mtime_ns == stamp  # not trained again
    train_run(config("max_train_steps=4", "checkpointing_steps=4"))  # longer: resumes from the step-2 checkpoint
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4


@pytest.mark.needs_data  # the judge's references are real images
def test_step_schedule_smoke_searches_without_adding_passes_and_resumes_from_its_cache(tmp_path):
    args = ["--smoke", "--threads", "1", "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]
    first = subprocess.run(_bench("step_schedule", *args), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    r = json.loads((tmp_path / "out" / "step_schedule.json").read_text())
    assert [s["steps"] for s in r["searches"]] == [2, 3] and r["teacher"] == "unipc:4:2:i=0.17-0.88"
    for s in r["searches"]:
        assert s["even"][0] == s["searched"][0] == 99 and len(s["searched"]) == s["steps"]
        assert s["searched_distance"] <= s["even_distance"] and s["searched_passes"] <= s["even_passes"]
    assert [row["name"] for row in r["rows"]] == ["teacher (the model's default)", "2 steps, even", "2 steps, searched",
                                                   "3 steps, even", "3 steps, searched"]
    assert r["rows"][2]["setting"].startswith("dpm++:2:2:i=0.17-0.88:t=99-") and r["rows"][0]["passes"] == 7
    cache = json.loads((tmp_path / "work" / "smoke" / "distances.json").read_text())
    assert len(cache["distances"]) >= sum(s["candidates"] for s in r["searches"]) - len(r["searches"])
    again = subprocess.run(_bench("step_schedule", *args), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads((tmp_path / "out" / "step_schedule.json").read_text())["searches"] == r["searches"]
    other = subprocess.run(_bench("step_schedule", *args, "--search-seed", "7"), cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    assert other.returncode != 0 and "give another --work-dir" in other.stderr


@pytest.mark.needs_data  # the judge's references are real images
def test_few_passes_smoke_counts_one_pass_per_student_step_and_judges_every_arm(tmp_path):
    done = subprocess.run(_bench("few_passes", "--smoke", "--threads", "1", "--out", str(tmp_path), "--work-dir",
                                 str(tmp_path / "work")), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads((tmp_path / "few_passes.json").read_text())
    names = [row["name"] for row in r["rows"]]
    assert names == ["teacher (its default)", "teacher (its default)", "DDPM-100", "student, 4 steps", "student, 2 steps",
                     "student, 1 step"]
    assert [row["num_per_class"] for row in r["rows"]] == [1, 2, 2, 1, 1, 1]  # DDPM-100 beside the teacher at its N
    assert [row["passes"] for row in r["rows"]] == [7, 7, 172, 4, 2, 1]  # 3 of unipc's 4 and 72 of DDPM's 100 guided
    assert all(_positive(row["seconds_per_image"]) and _positive(row["judge_fid"]) for row in r["rows"])
    markdown = (tmp_path / "few_passes.md").read_text()
    assert "(smoke run: not a measurement)" in markdown and "misses its target" in markdown and "At N = 20" in markdown


def test_few_passes_cache_answers_the_same_weights_in_any_folder_and_not_replaced_ones(tmp_path):
    from types import SimpleNamespace

    from benchmarks.few_passes import Cache
    from pipeline.settings import SamplingSettings

    args = SimpleNamespace(smoke=False, seed=0, no_inception=False)
    settings = SamplingSettings("ddim", 4, 1.75, (0.17, 0.88), 0.0, None)
    Cache(tmp_path, args).put("a" * 64, settings, 100, {"judge_fid": 1.0})  # the weights' pipeline.synthesis.model_fingerprint
    assert Cache(tmp_path, args).get("a" * 64, settings, 100) == {"judge_fid": 1.0}  # kept on disk, whatever the folder
    assert Cache(tmp_path, args).get("b" * 64, settings, 100) is None  # a new student shipped under the same folder name
    assert Cache(tmp_path, args).get("a" * 64, settings, 50) is None and Cache(
        tmp_path, SimpleNamespace(smoke=False, seed=1, no_inception=False)).get("a" * 64, settings, 100) is None


def test_few_passes_names_each_of_several_students_rows_and_states_each_ones_cost():
    import argparse

    from benchmarks.few_passes import arms, to_markdown
    from benchmarks.harness import smoke_pipeline
    from pipeline.training.distill import build_student, student_pipeline, validate

    teacher = smoke_pipeline()
    a, b = (student_pipeline(teacher, validate({}), build_student(teacher, validate({}))) for _ in range(2))
    args = argparse.Namespace(no_ddpm100=True, schedules=None, num_per_class=1, ddpm100_per_class=1)
    names = [name for name, *_ in arms(teacher, {"fast": a, "consistency": b}, None, args)]
    assert names == ["teacher (its default)"] + [f"student ({k}), {n} step{'s' * (n > 1)}" for k in ("fast", "consistency")
                                                  for n in (4, 2, 1)]
    assert [name for name, *_ in arms(teacher, {None: a}, None, args)][1:] == ["student, 4 steps", "student, 2 steps",
                                                                             "student, 1 step"]
    cost = {"trajectories": 8000, "trajectory_time_s": 1320, "updates": 1000, "pairs_seen": 128000, "wall_time_s": 2700,
            "hardware": "CPU"}
    row = {"name": "teacher (its default)", "setting": "unipc:10:2", "passes": 17, "seconds_per_image": 0.1, "num_per_class": 100,
           "judge_accuracy": 0.96, "judge_accuracy_floor": 0.95, "judge_fid": 0.8, "judge_fid_floor": 0.3,
           "inception_fid": None, "inception_fid_floor": None}
    text = to_markdown({"teacher": "t", "student": "s", "smoke": False, "seed": 0, "num_per_class": 100,
                        "timing_rounds": 3, "timing_images": 20, "rows": [row], "distillation": cost,
                        "students": [{"label": "fast", "method": "trajectory", "distillation": cost},
                                     {"label": "consistency", "method": "consistency", "distillation": cost}]})
    assert "Distillation cost of `fast` (trajectory distillation): 8,000" in text
    assert "Distillation cost of `consistency` (consistency distillation): 8,000" in text


def test_method_table_sets_students_of_several_runs_side_by_side_only_when_their_teachers_scored_the_same_images():
    from benchmarks.few_passes import method_table

    def run(students, teacher_fid=0.8):
        teacher = {"name": "teacher (its default)", "setting": "unipc:10:2", "num_per_class": 100, "passes": 17,
                   "seconds_per_image": 0.1, "judge_accuracy": 0.96, "judge_fid": teacher_fid, "judge_fid_floor": 0.3,
                   "inception_fid": 29.0, "inception_fid_floor": 18.0}
        rows = [teacher] + [{**teacher, "name": f"student{f' ({label})' if label else ''}, 4 steps", "passes": 4,
                             "seconds_per_image": 0.025, "judge_fid": fid, "inception_fid": 31.0}
                            for label, fid in students]
        cost = {"updates": 1000, "pairs_seen": 128000, "wall_time_s": 2040}
        return {"num_per_class": 100, "rows": rows, "distillation": cost,
                "students": [{"label": label, "distillation": cost} for label, _ in students]}

    text = method_table([("old", run([(None, 0.9)]), None), ("cd", run([("a", 0.85), ("b", 1.05)]), "b")])
    assert "| old | `unipc:10:2` | 4 | 0.960 | 1.20× | 1.18× | 4.0× | 1,000 updates, 128,000 pairs, 34 min |" in text
    assert "| cd | `unipc:10:2` | 4 | 0.960 | 1.50× |" in text and "1.10×" not in text  # only the second run's "b"
    with pytest.raises(ValueError, match="its run's teacher row is not the first run's"):
        method_table([("old", run([(None, 0.9)]), None), ("other", run([(None, 0.9)], teacher_fid=0.7), None)])


def test_allocator_smoke_runs_each_scenario_under_glibc_and_tcmalloc(tmp_path):
    import ctypes.util

    from conftest import IN_CI

    if not ctypes.util.find_library("tcmalloc_minimal"):
        reason = "no tcmalloc library (apt-get install libtcmalloc-minimal4)"
        pytest.fail(f"CI=true but {reason}") if IN_CI else pytest.skip(reason)
    done = subprocess.run(_bench("allocator", "--smoke", "--threads", "1", "--out", str(tmp_path)), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads((tmp_path / "allocator.json").read_text())
    assert [row["scenario"] for row in r["rows"]] == ["sample 2", "train"]
    assert all(_positive(row[a]["images_per_s"]) for row in r["rows"] for a in ("glibc", "tcmalloc"))
    assert 0 <= r["rows"][0]["glibc"]["kernel_share"] <= 1
    assert (r["rows"][0]["glibc"]["malloc_seen"], r["rows"][0]["tcmalloc"]["malloc_seen"]) == ("glibc", "tcmalloc")
    assert "(smoke run: not a measurement)" in (tmp_path / "allocator.md").read_text()


def test_distill_holdout_smoke_scores_every_pair_group_on_seen_and_new_trajectories(tmp_path):
    done = subprocess.run(_bench("distill_holdout", "--smoke", "--threads", "1", "--out", str(tmp_path)), cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads((tmp_path / "distill_holdout.json").read_text())
    assert r["trajectories"] == {"seen": 20, "new": 20, "scored_per_set": 20}  # 10 classes x 2 w, one each
    assert sorted(r["losses"]) == ["1_steps", "2_steps", "4_steps"]
    assert all(_positive(v["seen"]) and _positive(v["new"]) for v in r["losses"].values())
    assert "(smoke run: not a measurement)" in (tmp_path / "distill_holdout.md").read_text()


def test_few_passes_states_a_two_stage_distillations_stages_beside_its_summed_cost():
    from benchmarks.few_passes import stages_text

    one = {"stages": [{"updates": 1000, "learning_rate": 2e-4, "wall_time_s": 2040, "final_loss": 0.0058}]}
    assert stages_text({}) == "" and stages_text(one) == ""  # one stage: the cost line says it all
    two = {"stages": one["stages"] + [{"updates": 500, "learning_rate": 1e-4, "wall_time_s": 1020, "final_loss": 0.0051}]}
    assert stages_text(two) == (" The updates ran in 2 stages, each from the one before: 1,000 at learning rate 0.0002 "
                                "(34 min, final loss 0.0058); 500 at learning rate 0.0001 (17 min, final loss 0.0051).")


def test_loss_by_noise_smoke_scores_each_timestep_from_the_noise_schedule(tmp_path):
    """(The shipped models sample with UniPC, whose scheduler has no add_noise: the loss is built from alphas_cumprod.)"""
    from benchmarks.loss_by_noise import main

    r = main(["--smoke", "--threads", "1", "--out", str(tmp_path)])
    assert r["timesteps"] == [10, 90] and [row["style"] for row in r["rows"]] == ["none"]
    assert all(len(row["loss"]) == 2 and row["loss"][0] > 0 for row in r["rows"])
    assert (tmp_path / "loss_by_noise_smoke.json").is_file()
