"""Training: trainers behind one interface (`zoo.training.base`), the shared run (`zoo.training.run`),
the accelerate loop as the default trainer (`zoo.training.loop`) and the `train.py` entry point."""
from .base import Trainer, TrainOutcome, get_trainer, list_trainers, register_trainer
from .loop import SGDTrainer, main
from .run import TensorBatches, TrainingRun, TrainResult, evaluate, train, whole_batch

__all__ = ["SGDTrainer", "TensorBatches", "TrainOutcome", "Trainer", "TrainResult", "TrainingRun", "evaluate",
           "get_trainer", "list_trainers", "main", "register_trainer", "train", "whole_batch"]
