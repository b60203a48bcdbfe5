"""`SamplingSettings`: how images are sampled (sampler, steps, guidance, its interval, rescale), as one value.

Every command, the demo, synthesis, training's sample grids and the benchmarks pass this value around instead of five
loose keyword arguments; `pipeline.sampling.generate` is the only code that turns it into pipeline arguments.

    settings = SamplingSettings.resolve(pipe, guidance=2)   # the model's defaults (pipe.resolve_sampling) for the rest
    settings.check(pipe)                                      # the model's own checks (pipe.check_sampling)
    settings.pipeline_arguments()  # {'num_inference_steps': 10, 'guidance_scale': 2.0, ...}: what `pipe(...)` takes
    settings.describe()        # 'unipc 10 steps, guidance 2 for t/T in [0.17, 0.88]'  (titles, cards, reports)
    settings.label()           # 'unipc:10:2:i=0.17-0.88'  and  SamplingSettings.parse(label, pipe)
    settings.to_json()         # the keys manifests and results have always used; from_json() reads every old one

Torch-free at import: the command line builds and parses settings before torch is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .checks import is_int, plain_number

EVERY_STEP = (0.0, 1.0)  # the guidance interval that guides at every noise level
FIELDS = ("sampler", "steps", "guidance", "interval", "rescale", "timesteps", "style_guidance", "guide")
# field -> the pipeline's argument (`FashionDDPMPipeline.__call__`, `resolve_sampling`, `check_sampling`)
PIPELINE_ARGUMENTS = {"steps": "num_inference_steps", "timesteps": "timesteps", "guidance": "guidance_scale",
                      "interval": "guidance_interval", "rescale": "guidance_rescale",
                      "style_guidance": "style_guidance_scale", "guide": "guide_scale"}
LABEL_FORM = "SAMPLER:STEPS[:GUIDANCE][:i=LOW-HIGH][:r=PHI][:t=T1-T2-...][:s=STYLE_GUIDANCE][:a=GUIDE]"


@dataclass(frozen=True, eq=False)
class SamplingSettings:
    """How a model samples.

    Attributes:
        sampler: a name from `pipeline.schedulers.SAMPLERS`, or the class name of a model's own other scheduler.
        steps: denoising steps.
        guidance: classifier-free guidance w (1 = none, 0 = unconditional).
        interval: guide only for noise levels t/T in [low, high] (Kynkäänniemi et al. 2024); (0, 1) = every step.
        rescale: guidance rescale φ of Lin et al. 2023 (0 = off).
        timesteps: the exact timesteps, noisiest first (a searched few-step schedule; `steps` is their count), on a
            sampler that takes them (ddpm, ddim, dpm++, euler); None = the sampler's trailing spacing of `steps`.
        style_guidance: a style model's style request guided by its own weight w_s beside the class's w
            (compositional guidance); None = class and style guided together by w.
        guide: autoguidance weight a of a model with a guide U-Net (Karras et al. 2024): every step adds
            a * (out(x, c) - guide(x, c)); None or 0 = no guide.

    Unguided settings (w = 0 or 1) run one U-Net pass per step, so their interval and rescale change nothing: two
    settings that differ only there are equal, and their names and JSON leave them out. The values are kept as given,
    so that `check` still rejects a bad interval passed with w = 1.
    """

    sampler: str
    steps: int
    guidance: float
    interval: tuple[float, float] = EVERY_STEP
    rescale: float = 0.0
    timesteps: tuple[int, ...] | None = None
    style_guidance: float | None = None
    guide: float | None = None

    def __post_init__(self):
        # numpy / torch scalars, YAML and JSON lists, ints: stored as the Python floats / tuple they mean
        steps, guidance, rescale = (plain_number(v) for v in (self.steps, self.guidance, self.rescale))
        interval = EVERY_STEP if self.interval is None else self.interval
        if isinstance(interval, (list, tuple)):
            interval = tuple(plain_number(v) for v in interval)
            if all(is_int(v) for v in interval):
                interval = tuple(float(v) for v in interval)
        guidance, rescale = (float(v) if is_int(v) else v for v in (guidance, rescale))
        timesteps = self.timesteps
        if isinstance(timesteps, (list, tuple)):
            timesteps = tuple(plain_number(v) for v in timesteps)
        style_guidance, guide = (plain_number(v) for v in (self.style_guidance, self.guide))
        style_guidance, guide = (float(v) if is_int(v) else v for v in (style_guidance, guide))
        guide = None if guide == 0 else guide  # a weight of 0 is no guide: one name, one JSON
        for name, value in (("steps", steps), ("guidance", guidance), ("interval", interval), ("rescale", rescale),
                            ("timesteps", timesteps), ("style_guidance", style_guidance), ("guide", guide)):
            object.__setattr__(self, name, value)

    def _key(self) -> tuple:
        guided = self.guided
        return (self.sampler, self.steps, self.guidance, self.interval if guided else EVERY_STEP,
                self.rescale if guided else 0.0, self.timesteps, self.style_guidance, self.guide)

    def __eq__(self, other) -> bool:
        return isinstance(other, SamplingSettings) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"SamplingSettings({self.label()!r})"

    # ------------------------------------------------------------------ building
    @classmethod
    def resolve(cls, pipe, *, sampler: str | None = None, steps: int | None = None, guidance: float | None = None,
                interval: tuple[float, float] | None = None, rescale: float | None = None,
                timesteps: tuple[int, ...] | None = None, style_guidance: float | None = None,
                guide: float | None = None) -> SamplingSettings:
        """The settings a call on `pipe` uses: what is given, the model's saved defaults for the rest, as the pipeline
        works them out (`pipe.resolve_sampling`, the one place). Here only what a sampler name decides: another sampler
        than the model's own takes that sampler's default step count and not the model's own timesteps."""
        from .schedulers import default_steps, sampler_name

        own = sampler_name(pipe.scheduler)
        model_sampler = sampler is None or sampler == own
        if steps is None and timesteps is None and not model_sampler:
            steps = default_steps(sampler)
        arguments = pipe.resolve_sampling(steps, timesteps, guidance, interval, rescale, style_guidance,
                                          model_sampler=model_sampler, guide_scale=guide)
        return cls(sampler or own, **{field: arguments[name] for field, name in PIPELINE_ARGUMENTS.items()})

    @classmethod
    def parse(cls, text: str, pipe=None) -> SamplingSettings:
        """'unipc:10:1.5:i=0.17-0.88:r=0.7' -> settings. Parts left out (guidance, interval, rescale) come from `pipe`'s
        defaults (`resolve`); without a pipe the guidance must be given, and the interval defaults to every step.

        Raises:
            ValueError: naming the text and the accepted form.
        """
        overrides = parse_overrides(text)
        if pipe is not None:
            return cls.resolve(pipe, **overrides)
        if "guidance" not in overrides:
            raise ValueError(f"setting {text!r} names no guidance; without a model to take it from, use {LABEL_FORM}")
        return cls(**overrides)

    @classmethod
    def from_json(cls, data: dict) -> SamplingSettings:
        """Reads settings in any form this project has written: `to_json()` (synthesize manifests), evaluate results
        (`steps`, `guidance_scale`) and benchmark rows (`guidance`). A guided record without an interval was written
        before intervals were named, when that meant guidance at every step."""
        steps = data.get("num_inference_steps", data.get("steps"))
        guidance = data.get("guidance_scale", data.get("guidance"))
        missing = [name for name, value in (("sampler", data.get("sampler")), ("steps", steps), ("guidance", guidance))
                   if value is None]
        if missing:
            raise ValueError(f"sampling settings {data!r} lack {', '.join(missing)}")
        return cls(data["sampler"], steps, guidance, data.get("guidance_interval") or EVERY_STEP,
                   data.get("guidance_rescale") or 0.0, data.get("timesteps"), data.get("style_guidance_scale"),
                   data.get("guide_scale"))

    # ------------------------------------------------------------------ checking
    def check(self, pipe=None, max_steps: int | None = None, names: dict | None = None) -> SamplingSettings:
        """Raises ValueError naming the bad value and what is accepted; returns self. The sampler must be a named one
        (or `pipe`'s own); the rest is the pipeline's check: `pipe.check_sampling` (the model's own, with the named
        sampler's scheduler), or without a model `check_sampling_values` with `max_steps` as the step limit. `names`
        maps fields to how the caller's user spells them (e.g. {"guidance": "config key 'sample_guidance_scale'"})."""
        from .pipeline_fashion_ddpm import check_sampling_values
        from .schedulers import SAMPLER_NAMES, make_scheduler, sampler_name, takes_timesteps

        names = {"sampler": "sampler", **PIPELINE_ARGUMENTS, **(names or {})}
        own = sampler_name(pipe.scheduler) if pipe is not None else None
        if self.sampler not in SAMPLER_NAMES and self.sampler != own:
            raise ValueError(f"{names['sampler']} must be one of {list(SAMPLER_NAMES)}, got {self.sampler!r}")
        spelled = {name: names[field] for field, name in PIPELINE_ARGUMENTS.items()}
        spelled.update({"scheduler": repr(self.sampler),
                        "timestep samplers": ", ".join(n for n in SAMPLER_NAMES if takes_timesteps(n))})
        if pipe is None:
            check_sampling_values(self.pipeline_arguments(), max_steps, takes_timesteps(self.sampler), spelled)
        else:
            scheduler = pipe.scheduler if self.sampler == own else make_scheduler(self.sampler, pipe.scheduler.config)
            pipe.check_sampling(self.pipeline_arguments(), scheduler, spelled)
        return self

    def pipeline_arguments(self) -> dict:
        """These settings as the pipeline's sampling arguments (`pipe(**settings.pipeline_arguments(), ...)`), every
        one explicit so that the model's own defaults never fill in something the settings decided (an unguided or
        every-step setting passes the interval (0, 1); a style guidance of None leaves the model's own, as `resolve`)."""
        arguments = {name: getattr(self, field) for field, name in PIPELINE_ARGUMENTS.items()}
        arguments["timesteps"] = None if self.timesteps is None else list(self.timesteps)
        arguments["guide_scale"] = self.guide or 0.0  # no guide, said explicitly: a model's default guide stays off
        return arguments

    # ------------------------------------------------------------------ naming
    @property
    def guided(self) -> bool:
        """Whether the guided combination runs at all (w other than 0 and 1)."""
        return self.guidance not in (0, 1)

    @property
    def every_step(self) -> bool:
        """Whether guidance (if any) applies at every noise level."""
        return not self.guided or self.interval == EVERY_STEP

    def guidance_text(self) -> str:
        """'guidance 2' or 'guidance 2 for t/T in [0.17, 0.88]' (+ ', rescale 0.7')."""
        text = f"guidance {self.guidance:g}"
        if not self.every_step:
            text += f" for t/T in [{self.interval[0]:g}, {self.interval[1]:g}]"
        parts = [text, *([f"rescale {self.rescale:g}"] if self.guided and self.rescale else [])]
        parts += [f"{name} {value:g}" for name, value in (("style guidance", self.style_guidance), ("guide", self.guide))
                  if value is not None]
        return ", ".join(parts)

    def describe(self) -> str:
        """'unipc 10 steps, guidance 1.5 for t/T in [0.17, 0.88]': every title, card and report line (a searched
        schedule: 'dpm++ 4 steps at t = 99, 70, 35, 10, guidance ...')."""
        at = f" at t = {', '.join(map(str, self.timesteps))}" if self.timesteps else ""
        return f"{self.sampler} {self.steps} steps{at}, {self.guidance_text()}"

    def label(self) -> str:
        """'unipc:10:1.5:i=0.17-0.88' (interval and rescale only when they change anything): the benchmarks' form."""
        text = f"{self.sampler}:{self.steps}:{self.guidance:g}"
        if self.guided:
            text += f":i={self.interval[0]:g}-{self.interval[1]:g}"
        if self.guided and self.rescale:
            text += f":r={self.rescale:g}"
        if self.timesteps:
            text += ":t=" + "-".join(map(str, self.timesteps))
        if self.style_guidance is not None:
            text += f":s={self.style_guidance:g}"
        if self.guide is not None:
            text += f":a={self.guide:g}"
        return text

    def to_json(self) -> dict:
        """The keys synthesize manifests have always held: sampler, num_inference_steps, guidance_scale, and
        guidance_interval whenever there is guidance ([0, 1] = every step), guidance_rescale when it is on."""
        data = {"sampler": self.sampler, "num_inference_steps": self.steps, "guidance_scale": self.guidance}
        if self.guided:
            data["guidance_interval"] = list(self.interval)
            if self.rescale:
                data["guidance_rescale"] = self.rescale
        if self.timesteps:
            data["timesteps"] = list(self.timesteps)
        if self.style_guidance is not None:
            data["style_guidance_scale"] = self.style_guidance
        if self.guide is not None:
            data["guide_scale"] = self.guide
        return data

    def cli_args(self) -> list[str]:
        """The `fashion-ddpm` options that reproduce these settings on any model."""
        args = ["--scheduler", self.sampler, "--steps", str(self.steps), "--guidance", f"{self.guidance:g}"]
        if self.guided:
            args += ["--guidance-interval", f"{self.interval[0]:g}", f"{self.interval[1]:g}"]
            if self.rescale:
                args += ["--guidance-rescale", f"{self.rescale:g}"]
        if self.timesteps:
            args += ["--timesteps", *map(str, self.timesteps)]
        if self.style_guidance is not None:
            args += ["--style-guidance", f"{self.style_guidance:g}"]
        if self.guide is not None:
            args += ["--guide-scale", f"{self.guide:g}"]
        return args


def parse_overrides(text: str) -> dict:
    """The parts a setting label names, as `SamplingSettings.resolve` keywords; ValueError naming the form."""
    from .schedulers import SAMPLER_NAMES

    parts = text.strip().split(":")
    overrides: dict = {}
    try:
        if len(parts) < 2 or parts[0] not in SAMPLER_NAMES:
            raise ValueError
        overrides["sampler"], overrides["steps"] = parts[0], int(parts[1])
        for extra in parts[2:]:
            if extra.startswith("i="):
                low, high = extra[2:].split("-")
                overrides["interval"] = (float(low), float(high))
            elif extra.startswith("r="):
                overrides["rescale"] = float(extra[2:])
            elif extra.startswith("t="):
                overrides["timesteps"] = tuple(int(t) for t in extra[2:].split("-"))
            elif extra.startswith("s="):
                overrides["style_guidance"] = float(extra[2:])
            elif extra.startswith("a="):
                overrides["guide"] = float(extra[2:])
            else:
                overrides["guidance"] = float(extra)
                if not math.isfinite(overrides["guidance"]):
                    raise ValueError
    except ValueError:
        raise ValueError(f"setting {text!r} must be {LABEL_FORM} with SAMPLER in {list(SAMPLER_NAMES)}") from None
    return overrides
