"""The founding report's CLIP-guided training loss: a frozen CLIP scores the U-Net's estimate of the clean image.

For an image of class c at timestep t with noisy input x_t and model output v (or noise),

    x0_hat = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v          (v-prediction; from the noise for epsilon)
    e      = CLIP image embedding of pixel_values((x0_hat + 1) / 2)    (differentiable resize + normalise)
    term   = 1 - cos(e, T(prompt_c)) + cos(e, T(negative_c))           (the negative term is optional)
    loss   = lambda * sum_i w_i term_i / batch size,   w_i = alpha_bar_t for t/T <= max_noise, else 0

The weight is the x0 estimate's signal share: at high noise x0_hat is a blurry class average, and asking CLIP to call
it "clear" would push the U-Net to invent detail it cannot know. Null-class (label-dropped) images get no term: they
have no class to name. CLIP's weights are frozen; the gradient reaches the U-Net through x0_hat only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .clip import pixel_values


class ClipGuidanceLoss:
    """`loss(noisy, prediction, t, labels)` -> the weighted CLIP term (0-d tensor), on a frozen CLIP."""

    def __init__(self, model, image_processor, prompt_embeds: torch.Tensor, negative_embeds: torch.Tensor | None,
                 scheduler, weight: float, max_noise: float, null_id: int):
        self.model = model.eval().requires_grad_(False)
        self.image_processor = image_processor
        self.prompt_embeds, self.negative_embeds = prompt_embeds, negative_embeds  # (classes, D), L2-normalised
        self.prediction_type = scheduler.config.prediction_type
        self.alphas_cumprod = scheduler.alphas_cumprod
        self.max_t = max_noise * scheduler.config.num_train_timesteps
        self.weight, self.null_id = weight, null_id

    @classmethod
    def from_config(cls, config, scheduler, class_names, device) -> ClipGuidanceLoss:
        """The loss of a TrainConfig (clip_model null: the shipped Fashion-MNIST CLIP), on `device`."""
        from ..evaluation.clip import load_clip, prompt_name

        scorer = load_clip(config.clip_model, device=device)
        names = [prompt_name(n) for n in class_names]

        def embeds(template):
            return torch.from_numpy(scorer.text_embeddings([template.format(n) for n in names])).to(device)

        negative = embeds(config.clip_negative_prompt) if config.clip_negative_prompt else None
        return cls(scorer.model, scorer.processor.image_processor, embeds(config.clip_prompt), negative, scheduler,
                   config.clip_loss_weight, config.clip_max_noise, len(class_names))

    def x0_estimate(self, noisy: torch.Tensor, prediction: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.alphas_cumprod.to(noisy.device)[t].float()[:, None, None, None]
        if self.prediction_type == "v_prediction":
            return alpha_bar.sqrt() * noisy - (1 - alpha_bar).sqrt() * prediction
        return (noisy - (1 - alpha_bar).sqrt() * prediction) / alpha_bar.sqrt()

    def image_weights(self, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        alpha_bar = self.alphas_cumprod.to(t.device)[t].float()
        return alpha_bar * ((t <= self.max_t) & (labels != self.null_id)).float()

    def terms(self, x0: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """1 - cos(prompt) + cos(negative) of each image (x0 in [-1, 1]) for its class."""
        pixels = pixel_values(((x0.float() + 1) / 2).clamp(0, 1), self.image_processor)
        features = self.model.get_image_features(pixel_values=pixels)
        features = F.normalize(features if torch.is_tensor(features) else features.pooler_output, dim=-1)
        term = 1 - (features * self.prompt_embeds[labels]).sum(-1)
        if self.negative_embeds is not None:
            term = term + (features * self.negative_embeds[labels]).sum(-1)
        return term

    def __call__(self, noisy: torch.Tensor, prediction: torch.Tensor, t: torch.Tensor, labels: torch.Tensor):
        """The batch's CLIP loss (lambda included) and the mean term over the images that got one (for the log)."""
        weights = self.image_weights(t, labels)
        used = weights > 0
        if not used.any():
            zero = prediction.sum() * 0  # keeps the graph (and DDP's gradient hooks) whole
            return zero, zero.detach()
        x0 = self.x0_estimate(noisy[used], prediction[used], t[used])
        term = self.terms(x0, labels[used])
        loss = self.weight * (weights[used] * term).sum() / len(t)
        return loss, term.detach().mean()
