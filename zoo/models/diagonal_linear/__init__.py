from .configuration_diagonal_linear import DiagonalLinearConfig
from .modeling_diagonal_linear import DiagonalLinearForRegression, DiagonalLinearModel

ARCHITECTURE = dict(
    config_class=DiagonalLinearConfig,
    base_model_class=DiagonalLinearModel,
    model_class=DiagonalLinearForRegression,
    task_auto_class="AutoModelForSequenceClassification",
    pipeline_tag="tabular-regression",
    input_kind="tabular",
    description="Diagonal linear network β = u⊙u − v⊙v (sparse regression; implicit bias and stability theory)",
    paper="""@inproceedings{wu2023implicit,
  title     = {The Implicit Regularization of Dynamical Stability in Stochastic Gradient Descent},
  author    = {Wu, Lei and Su, Weijie J.},
  booktitle = {Proceedings of the 40th International Conference on Machine Learning (ICML)},
  year      = {2023},
  eprint    = {2305.17490},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/2305.17490}
}""",
    tiny_config=dict(input_dim=5, num_labels=3),
)
