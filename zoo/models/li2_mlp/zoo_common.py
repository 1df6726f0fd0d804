"""Helpers every zoo architecture folder shares: config validation, the classification loss,
weight-init functions that work on transformers 4.4x and 5.x.

This file is the single source; each architecture folder holds a byte-identical copy named
``zoo_common.py`` because the Hub runs a repo's configuration/modeling files alone and
transformers copies only same-folder relative imports (``from .zoo_common import ...``).
tests/test_registry.py fails when a copy drifts; ``python -m zoo.models._shared`` rewrites them.
It imports only torch and transformers.
"""
import torch

try:  # transformers >= 5: init functions that skip weights already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # transformers 4.x: from_pretrained makes torch.nn.init's functions no-ops while it loads
    from torch.nn import init

# The oldest transformers these files are tested with (tests/test_registry.py, the slow venv test).
MIN_TRANSFORMERS_VERSION = "4.40.0"

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")


def copy_(tensor, value):
    """Fill `tensor` with `value` at init (transformers 5 has init.copy_; 4.x does not)."""
    if hasattr(init, "copy_"):
        return init.copy_(tensor, value)
    with torch.no_grad():
        return tensor.copy_(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(field: str, value):
    """`value` if it is an integer >= 1, else a ValueError naming `field`."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{field} must be a positive integer, got {value!r}")
    return value


def positive_int_list(field: str, values) -> list:
    """`values` as a list if it is a non-empty list of integers >= 1, else a ValueError naming `field`."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{field} must be a non-empty list of positive integers, got {values!r}")
    values = list(values)
    if not values or any(not _is_int(v) or v < 1 for v in values):
        raise ValueError(f"{field} must be a non-empty list of positive integers, got {values!r}")
    return values


def one_of(field: str, value, choices):
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value


def fraction(field: str, value) -> float:
    """A probability in [0, 1) (dropout and the like)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{field} must be in [0, 1), got {value!r}")
    return float(value)


def positive_float(field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{field} must be positive, got {value!r}")
    return float(value)


def label_kwargs(num_labels, kwargs: dict, default: int) -> dict:
    """Check the label settings of a classifier/regressor config; returns `kwargs` completed.

    A saved config carries id2label instead of num_labels. problem_type defaults to
    single-label classification whatever num_labels is: transformers would infer "regression"
    from num_labels == 1, silently turning a one-output classifier into a regressor. A
    classifier needs two classes or more; a scalar regressor says problem_type="regression".
    """
    if num_labels is None:
        num_labels = len(kwargs["id2label"]) if kwargs.get("id2label") else default
    positive_int("num_labels", num_labels)
    problem_type = kwargs.get("problem_type") or "single_label_classification"
    one_of("problem_type", problem_type, PROBLEM_TYPES)
    if problem_type == "single_label_classification" and num_labels < 2:
        raise ValueError(
            f"num_labels must be at least 2 for a classifier, got {num_labels}; "
            "for a regressor set problem_type='regression'"
        )
    return {**kwargs, "num_labels": num_labels, "problem_type": problem_type}


def classification_loss(logits, labels, config):
    """The head's loss: cross-entropy for integer class labels, whatever the config says.

    Floating-point labels mean regression (mean squared error) when problem_type is
    "regression", or multi-label targets (binary cross-entropy) when it is
    "multi_label_classification"; anything else is an error, never a silent change of loss.
    """
    num_labels = logits.shape[-1]
    if not labels.is_floating_point():
        if num_labels < 2:
            raise ValueError(f"integer class labels need at least 2 outputs, the model has {num_labels}")
        # no upcast: the same numbers as transformers' ForSequenceClassificationLoss (round-1 runs)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, num_labels), labels.reshape(-1).long())
    problem_type = getattr(config, "problem_type", None)
    if problem_type == "regression":
        if num_labels == 1:
            return torch.nn.functional.mse_loss(logits.reshape(-1), labels.reshape(-1).to(logits.dtype))
        return torch.nn.functional.mse_loss(logits, labels.to(logits.dtype))
    if problem_type == "multi_label_classification":
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise ValueError(
        f"floating-point labels with problem_type={problem_type!r}: pass integer class ids "
        "(or set problem_type='regression' / 'multi_label_classification')"
    )


def return_tuple(config, return_dict) -> bool:
    """True when the caller asked for tuple outputs (return_dict=False, here or in the config)."""
    return not (return_dict if return_dict is not None else getattr(config, "return_dict", True))
