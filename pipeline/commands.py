"""Registry of `fashion-ddpm` subcommands that live beside their code (evaluation, CLIP, pictures).

Each entry is a function `register(subparsers)` that adds subcommands with `set_defaults(func=...)`.
"""

from .clip_eval import register as register_clip_eval  # evaluate-clip, best-of-n
from .evaluate import register as register_evaluate  # evaluate
from .visualize import register as register_visualize  # visualize

REGISTER = [register_evaluate, register_clip_eval, register_visualize]
