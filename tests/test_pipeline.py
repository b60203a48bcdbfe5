"""Core behaviour of FashionDDPMPipeline with tiny random weights."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import gen
from pipeline import FASHION_MNIST_CLASSES, FashionDDPMPipeline
from pipeline.schedulers import SAMPLERS, use_sampler


def test_schedule_ends_in_noise(tiny_pipe):
    alphas = tiny_pipe.scheduler.alphas_cumprod
    assert tiny_pipe.scheduler.config.num_train_timesteps == 100
    assert alphas[-1].item() <= 1e-3
    assert alphas[0].item() > 0.99  # and starts almost clean


def test_unet_layout(tiny_pipe):
    config = FashionDDPMPipeline.from_config_dict().unet.config
    assert (config.sample_size, config.in_channels, config.out_channels) == (28, 1, 1)
    assert config.num_class_embeds == 11  # ten classes + the null class
    assert len(config.down_block_types) == 3  # 28 -> 14 -> 7


@pytest.mark.parametrize("output_type", ["pil", "np", "pt"])
def test_output_types(tiny_pipe, output_type):
    images = tiny_pipe(class_labels=["Sneaker", "Bag"], num_images_per_label=2, num_inference_steps=2,
                       generator=gen(), output_type=output_type).images
    if output_type == "pil":
        assert len(images) == 4 and all(isinstance(i, Image.Image) and i.size == (28, 28) for i in images)
        return
    if output_type == "np":
        assert isinstance(images, np.ndarray) and images.shape == (4, 28, 28, 1) and images.dtype == np.float32
    else:
        assert isinstance(images, torch.Tensor) and images.shape == (4, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1


def test_default_labels_one_per_class_and_tuple_return(tiny_pipe):
    (images,) = tiny_pipe(num_inference_steps=2, generator=gen(), output_type="np", return_dict=False)
    assert images.shape[0] == 10


def test_seed_determinism(tiny_pipe):
    a = tiny_pipe(class_labels=[1, 7], num_inference_steps=3, generator=gen(5), output_type="np").images
    b = tiny_pipe(class_labels=[1, 7], num_inference_steps=3, generator=gen(5), output_type="np").images
    c = tiny_pipe(class_labels=[1, 7], num_inference_steps=3, generator=gen(6), output_type="np").images
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_batch_equals_one_at_a_time(tiny_pipe):
    labels = ["Coat", "sandal", 9]
    batch = tiny_pipe(class_labels=labels, num_inference_steps=3, generator=[gen(i) for i in range(3)], output_type="np").images
    single = [tiny_pipe(class_labels=[label], num_inference_steps=3, generator=[gen(i)], output_type="np").images[0]
              for i, label in enumerate(labels)]
    np.testing.assert_allclose(batch, np.stack(single), atol=1e-5)


def test_guidance_formula_and_single_batched_pass(tiny_pipe):
    unet = tiny_pipe.unet
    x, t = torch.randn(3, 1, 28, 28, generator=gen()), torch.tensor(50)
    ids, null = torch.tensor([0, 4, 8]), torch.full((3,), 10)
    with torch.no_grad():
        eps_c, eps_u = unet(x, t, class_labels=ids).sample, unet(x, t, class_labels=null).sample
        calls = []
        handle = unet.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
        guided = tiny_pipe.guided_prediction(x, t, ids, 2.5)
        assert calls == [6]  # null and conditional halves in ONE batched pass
        cond, uncond = tiny_pipe.guided_prediction(x, t, ids, 1.0), tiny_pipe.guided_prediction(x, t, ids, 0.0)
        assert calls == [6, 3, 3]  # w=1 and w=0 need only one half each
        handle.remove()
    torch.testing.assert_close(cond, eps_c)
    torch.testing.assert_close(uncond, eps_u)
    torch.testing.assert_close(guided, eps_u + 2.5 * (eps_c - eps_u), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_scheduler_swaps_with_few_steps(tiny_pipe, name):
    use_sampler(tiny_pipe, name)
    assert type(tiny_pipe.scheduler).__name__ == SAMPLERS[name][0]
    images = tiny_pipe(class_labels=["Dress"], num_images_per_label=2, num_inference_steps=4, generator=gen(), output_type="pt").images
    assert images.shape == (2, 1, 28, 28) and torch.isfinite(images).all()
    again = tiny_pipe(class_labels=["Dress"], num_images_per_label=2, num_inference_steps=4, generator=gen(), output_type="pt").images
    assert torch.equal(images, again)


def test_scheduler_swap_by_from_config(tiny_pipe):
    from diffusers import DDIMScheduler

    tiny_pipe.scheduler = DDIMScheduler.from_config(tiny_pipe.scheduler.config)
    assert tiny_pipe(class_labels="Bag", num_inference_steps=5, output_type="np", generator=gen()).images.shape == (1, 28, 28, 1)


def test_callback_sees_every_step_and_can_replace_latents(tiny_pipe):
    seen = []

    def record(pipe, i, t, kwargs):
        seen.append((i, int(t), kwargs["latents"].clone()))
        return {"latents": torch.zeros_like(kwargs["latents"])} if i == 3 else {}

    images = tiny_pipe(class_labels=[0], num_inference_steps=4, generator=gen(), output_type="pt",
                       callback_on_step_end=record).images
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert [s[1] for s in seen] == tiny_pipe.scheduler.timesteps.tolist()
    assert torch.all(images == 0.5)  # the last callback's zeros became the output (mapped from [-1, 1])


def test_label_names_and_aliases(tiny_pipe):
    for alias, expected in [("tshirt", 0), ("T-Shirt", 0), ("top", 0), ("t-shirt/top", 0), ("TROUSER", 1),
                            ("ankle-boot", 9), ("Ankle boot", 9), ("sneakers", 7), ("bag", 8), (3, 3)]:
        assert tiny_pipe.class_id(alias) == expected, alias
    assert tiny_pipe.class_names == list(FASHION_MNIST_CLASSES)
    assert tiny_pipe.resolve_class_ids(torch.tensor([2, 5])) == [2, 5]


def test_custom_class_names_survive_save(tmp_path):
    torch.manual_seed(0)
    pipe = FashionDDPMPipeline.from_config_dict(unet={"block_out_channels": (8, 8), "norm_num_groups": 4,
                                                      "down_block_types": ("DownBlock2D",) * 2, "up_block_types": ("UpBlock2D",) * 2,
                                                      "layers_per_block": 1}, class_names=["cat", "dog"])
    assert pipe.unet.config.num_class_embeds == 3
    pipe.save_pretrained(tmp_path)
    loaded = FashionDDPMPipeline.from_pretrained(tmp_path)
    assert loaded.class_names == ["cat", "dog"] and loaded.class_id("DOG") == 1
    with pytest.raises(ValueError, match="tshirt"):
        loaded.class_id("tshirt")  # Fashion-MNIST aliases apply only to Fashion-MNIST names


BAD_CALLS = [
    ({"class_labels": "spaceship"}, r"unknown class name 'spaceship'; valid names: \['T-shirt/top'"),
    ({"class_labels": [3, 10]}, r"class id 10 is out of range: valid ids are 0..9"),
    ({"class_labels": -1}, r"class id -1 is out of range"),
    ({"class_labels": []}, r"class_labels is empty"),
    ({"class_labels": 2.5}, r"class label 2.5 must be an int id or a class name"),
    ({"class_labels": torch.tensor([0.5])}, r"integer tensor"),
    ({"num_images_per_label": 0}, r"num_images_per_label must be an int >= 1, got 0"),
    ({"guidance_scale": -1.0}, r"guidance_scale must be a finite number >= 0 .* got -1.0"),
    ({"guidance_scale": float("nan")}, r"guidance_scale .* got nan"),
    ({"guidance_scale": float("inf")}, r"guidance_scale .* got inf"),
    ({"num_inference_steps": 0}, r"num_inference_steps must be an int in 1..100 .* got 0"),
    ({"num_inference_steps": 101}, r"num_inference_steps .* got 101"),
    ({"output_type": "latent"}, r"output_type 'latent' is not supported; use one of \['pil', 'np', 'pt'\]"),
    ({"class_labels": [1, 2], "generator": [torch.Generator()]}, r"got a list of 1 generators for 2 images"),
    ({"latents": torch.zeros(2, 1, 28, 28)}, r"latents have shape \(2, 1, 28, 28\), expected \(10, 1, 28, 28\)"),
]


def _call_id(kwargs: dict) -> str:
    """A test id that is the same in every pytest-xdist worker: no object address, no tensor's values."""
    def shown(value):
        if isinstance(value, list):
            return f"[{', '.join(shown(v) for v in value)}]"
        if isinstance(value, torch.Tensor):
            return f"tensor{tuple(value.shape)}"
        return "Generator" if isinstance(value, torch.Generator) else repr(value)

    return ", ".join(f"{k}={shown(v)}" for k, v in kwargs.items())


@pytest.mark.parametrize("kwargs,message", BAD_CALLS, ids=[_call_id(k) for k, _ in BAD_CALLS])
def test_bad_input_raises_before_any_work(tiny_pipe, kwargs, message):
    calls = []
    tiny_pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match=message):
        tiny_pipe(**{"num_inference_steps": 2, **kwargs})
    assert calls == []


def test_mismatched_class_embedding_rejected(tiny_pipe):
    with pytest.raises(ValueError, match=r"num_class_embeds=11 must equal len\(class_names\) \+ 1 = 3"):
        FashionDDPMPipeline(tiny_pipe.unet, tiny_pipe.scheduler, class_names=["a", "b"])
