from .configuration_two_layer_mlp import TwoLayerMLPConfig
from .modeling_two_layer_mlp import TwoLayerMLPForClassification, TwoLayerMLPModel

ARCHITECTURE = dict(
    config_class=TwoLayerMLPConfig,
    base_model_class=TwoLayerMLPModel,
    model_class=TwoLayerMLPForClassification,
    task_auto_class="AutoModelForSequenceClassification",
    pipeline_tag="tabular-classification",  # the Hub's task for vector inputs; transformers has no pipeline for it
    description="One-hidden-layer network (relu | tanh | quadratic | ...), optional fixed second layer",
    # The recipe this family ships (two-layer-mlp-xor-cluster) reproduces this paper.
    paper="""@inproceedings{xu2024benign,
  title     = {Benign Overfitting and Grokking in {ReLU} Networks for {XOR} Cluster Data},
  author    = {Xu, Zhiwei and Wang, Yutong and Frei, Spencer and Vardi, Gal and Hu, Wei},
  booktitle = {The Twelfth International Conference on Learning Representations (ICLR)},
  year      = {2024},
  eprint    = {2310.02541},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/2310.02541}
}""",
    tiny_config=dict(input_dim=6, hidden_dim=8, num_labels=3),
)
