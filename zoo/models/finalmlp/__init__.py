from .configuration_finalmlp import FinalMLPConfig
from .modeling_finalmlp import FinalMLPForClickPrediction, FinalMLPModel

ARCHITECTURE = dict(
    config_class=FinalMLPConfig,
    base_model_class=FinalMLPModel,
    model_class=FinalMLPForClickPrediction,
    task_auto_class="AutoModelForSequenceClassification",
    pipeline_tag="tabular-classification",  # categorical fields in, click out; transformers has no pipeline for it
    input_kind="tabular",
    description="FinalMLP two-stream MLP for click-through prediction (feature gating, bilinear fusion); DualMLP and MLP by a switch",
    paper="""@inproceedings{mao2023finalmlp,
  title     = {{FinalMLP}: An Enhanced Two-Stream {MLP} Model for {CTR} Prediction},
  author    = {Mao, Kelong and Zhu, Jieming and Su, Liangcai and Cai, Guohao and Li, Yuanfu and Dong, Zhenhua},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {37},
  number    = {4},
  pages     = {4552--4560},
  year      = {2023},
  eprint    = {2304.00902},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/2304.00902}
}""",
    tiny_config=dict(field_vocab_sizes=[5, 4, 3], embedding_dim=4, mlp1_hidden_units=[8], mlp2_hidden_units=[6],
                     fs_hidden_units=[5], fs1_context=[0], num_heads=2, dropout=0.0, num_labels=2),
)
