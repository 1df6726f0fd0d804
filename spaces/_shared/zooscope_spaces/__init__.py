"""Code the zooscope Spaces share (``spaces/<name>/app.py`` imports it as ``zooscope_spaces``).

In a checkout it lives in ``spaces/_shared/``; ``python -m spaces.export NAME DIR`` copies it
next to the app, so a deployed Space folder carries it. It needs zooscope (``zoo``, and
``analysis`` for the LM Spaces) and gradio, never the other way round.
"""
from .core import (
    FIGURE_CSS,
    LIMITS,
    ModelCache,
    bounded,
    check_model_name,
    check_parameters,
    check_text,
    extra_models,
    gradio_errors,
    launch,
    lm_choices,
    output_folder,
    smollm2_gguf,
    write_json,
)
from .cost import SCHEDULER, Estimate, Scheduler, Speed, measure_speed
from .explorer import DATA_WIDGETS, image_to_pixels, input_kind, widget_kind

__all__ = [
    "DATA_WIDGETS", "Estimate", "FIGURE_CSS", "LIMITS", "ModelCache", "SCHEDULER", "Scheduler", "Speed", "bounded",
    "check_model_name", "check_parameters", "check_text", "extra_models", "gradio_errors", "image_to_pixels",
    "input_kind", "launch", "lm_choices", "measure_speed", "output_folder", "smollm2_gguf", "widget_kind",
    "write_json",
]
