from .configuration_li2_mlp import Li2MLPConfig
from .modeling_li2_mlp import Li2MLPForClassification, Li2MLPModel

ARCHITECTURE = dict(
    config_class=Li2MLPConfig,
    base_model_class=Li2MLPModel,
    model_class=Li2MLPForClassification,
    task_auto_class="AutoModelForSequenceClassification",
    pipeline_tag="tabular-classification",  # vector (one-hot) inputs; transformers has no pipeline for it
    input_kind="tabular",
    description="Li2 grokking net: one-hot operands -> Linear(2M->K, no bias) -> x^2 (or relu, ...) -> Linear(K->M)",
    paper="""@article{tian2025provable,
  title         = {Provable Scaling Laws of Feature Emergence from Learning Dynamics of Grokking},
  author        = {Tian, Yuandong},
  journal       = {arXiv preprint arXiv:2509.21519},
  year          = {2025},
  eprint        = {2509.21519},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2509.21519}
}""",
    tiny_config=dict(group_order=5, hidden_dim=8, num_labels=5),
)
