from .configuration_hypernet import HyperNetConfig
from .modeling_hypernet import HyperNetForImageClassification, HyperNetModel

ARCHITECTURE = dict(
    config_class=HyperNetConfig,
    base_model_class=HyperNetModel,
    model_class=HyperNetForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="Hypernetwork γ → weights of a target MLP classifier (standard or magnitude-invariant parametrisation)",
    paper="""@inproceedings{ortiz2023magnitude,
  title     = {Magnitude Invariant Parametrizations Improve Hypernetwork Learning},
  author    = {Ortiz, Jose Javier Gonzalez and Guttag, John and Dalca, Adrian V.},
  booktitle = {International Conference on Learning Representations},
  year      = {2024},
  url       = {https://arxiv.org/abs/2304.07645}
}""",
    tiny_config=dict(image_size=3, num_channels=1, target_hidden_size=4, hyper_hidden_sizes=[5], num_labels=3),
)
