"""The model card: huggingface_hub ModelCard metadata, a filled template, and eval_results from `evaluate`."""

from huggingface_hub import ModelCard

from pipeline.settings import SamplingSettings
from pipeline.training.model_card import fill_metrics, fill_section, write_model_card

STATS = {"steps": 1404, "images_seen": 179712, "wall_time_s": 4380.0, "final_loss": 0.0712, "hardware": "CPU",
         "data_source": "Fashion-MNIST IDX files", "num_train_images": 60000, "epochs": 3.0, "images_per_step": 128,
         "parameters": 1_600_000}
SETTINGS = SamplingSettings("dpm++", 20, 2.0)
RESULT = {"num_images": 1000, "sampler": "dpm++", "steps": 20, "guidance_scale": 2.0, "judge_accuracy": 0.97,
          "judge_accuracy_floor": 0.94, "judge_fid": 0.6, "judge_fid_floor": 0.3, "inception_fid": 25.0,
          "inception_fid_floor": 18.3}


def test_card_metadata_text_and_eval_results(tmp_path):
    folder = tmp_path / "fashion-ddpm-test"
    path = write_model_card(folder, {"prediction_type": "v_prediction", "description": "A test run."}, STATS,
                            "samples/final.png", "samples/loss_curve.png", SETTINGS, local_path="runs/test")
    card = ModelCard.load(path)
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag is None
    assert {"class-conditional", "v-prediction", "fashion-mnist"} <= set(card.data.tags)
    text = card.text
    assert "A test run." in text and "the velocity v" in text and "dpm++ 20 steps, guidance 2" in text and "{{" not in text
    assert "{#" not in text and "1 h 13 min" in text
    # the usage example works from the Hub (a placeholder until an id is known) and from a checkout
    assert 'from_pretrained("USER/NAME", trust_remote_code=True)' in text and '"runs/test"' in text
    hub = write_model_card(tmp_path / "hub", {}, STATS, "s.png", "l.png", SETTINGS, hub_model_id="me/fashion")
    assert 'from_pretrained("me/fashion", trust_remote_code=True)' in ModelCard.load(hub).text
    fill_metrics(path, "| judge-FID | 0.6 | 0.3 |", RESULT)
    card = ModelCard.load(path)
    assert "| judge-FID | 0.6 | 0.3 |" in card.text and "Not measured yet" not in card.text
    values = {r.metric_name: (r.metric_type, r.metric_value) for r in card.data.eval_results}
    # the judge's numbers are typed as what they are; only the standard Inception FID is a "fid"
    assert values == {"judge accuracy": ("judge-accuracy", 0.97), "judge-FID": ("judge-fid", 0.6),
                      "Inception FID": ("fid", 25.0)}
    # how each was measured is in its args (the Hub's metric `args`), not packed into its name
    floors = {r.metric_name: r.metric_args.pop("real_data_floor") for r in card.data.eval_results}
    assert floors == {"judge accuracy": 0.94, "judge-FID": 0.3, "Inception FID": 18.3}
    assert all(r.metric_args == {"num_images": 1000, "sampler": "dpm++", "num_inference_steps": 20, "guidance_scale": 2.0,
                                 "guidance_interval": [0.0, 1.0], "seed": 0} for r in card.data.eval_results)
    assert all(r.dataset_type == "zalando-datasets/fashion_mnist" and r.task_type == "unconditional-image-generation"
               for r in card.data.eval_results)
    assert card.data.model_name == "fashion-ddpm-test"  # one model-index entry per model folder
    # the "As training data" section: a placeholder in a new card, replaced (not duplicated) when filled
    assert "No Classification Accuracy Score yet" in card.text
    for table in ("| synthetic 1000/class | 10,000 | 80.00 ± 1.00 |", "| synthetic 1000/class | 10,000 | 81.00 ± 1.00 |"):
        fill_section(path, "synthetic", "As training data", table)
    text = ModelCard.load(path).text
    assert text.count("## As training data") == 1 and "81.00" in text and "80.00" not in text
    assert "No Classification Accuracy Score yet" not in text and text.index("As training data") < text.index("## Limitations")
