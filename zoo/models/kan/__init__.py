from .configuration_kan import KANConfig
from .modeling_kan import KANForImageClassification, KANModel

ARCHITECTURE = dict(
    config_class=KANConfig,
    base_model_class=KANModel,
    model_class=KANForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="Kolmogorov-Arnold network (B-spline, ReLU-KAN or AF-KAN bases)",
    # The KAN paper; ReLU-KAN (Qiu et al. 2024, arXiv:2406.02075) and AF-KAN (Ta et al. 2025,
    # github.com/hoangthangta/All-KAN) are the `relu` and `af` bases.
    paper="""@inproceedings{liu2025kan,
  title     = {{KAN}: Kolmogorov-Arnold Networks},
  author    = {Liu, Ziming and Wang, Yixuan and Vaidya, Sachin and Ruehle, Fabian and Halverson, James and Solja{\\v{c}}i{\\'c}, Marin and Hou, Thomas Y. and Tegmark, Max},
  booktitle = {International Conference on Learning Representations},
  year      = {2025},
  url       = {https://arxiv.org/abs/2404.19756}
}""",
    tiny_config=dict(image_size=4, num_channels=1, hidden_sizes=[5], grid_size=3, spline_order=2, num_labels=3),
)
