"""Training with accelerate: the loop (`zoo.training.loop`) and the `train.py` entry point."""
from .loop import TensorBatches, TrainResult, evaluate, main, train, whole_batch

__all__ = ["TensorBatches", "TrainResult", "evaluate", "main", "train", "whole_batch"]
