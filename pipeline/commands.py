"""Registry of `fashion-ddpm` subcommands that live beside their code (evaluation, visualisation)."""

REGISTER = []
