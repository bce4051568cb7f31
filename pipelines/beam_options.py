"""Beam pipeline options: the default runner and the user's ``--beam-arg`` values, passed through."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

DEFAULT_RUNNER = "FnApiRunner"  # in-process; Prism would need a download


def option(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` (or ``""`` for a bare ``--name``) in ``args``."""
    for a in args:
        if a == f"--{name}" or a.startswith(f"--{name}="):
            return a.partition("=")[2]
    return None


def beam_options(beam_args: list[str] | None) -> PipelineOptions:
    args = list(beam_args or [])
    if option(args, "runner") is None:
        args.append(f"--runner={DEFAULT_RUNNER}")
    return PipelineOptions(args)
