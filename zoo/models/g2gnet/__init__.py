from .configuration_g2gnet import G2GNetConfig
from .modeling_g2gnet import G2GNetForImageClassification, G2GNetModel

ARCHITECTURE = dict(
    config_class=G2GNetConfig,
    base_model_class=G2GNetModel,
    model_class=G2GNetForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="Block-sparse ensemble-to-ensemble MLP image classifier (G2GNet)",
    # Sparse modular connectivity between ensembles of units, after the mouse visual cortex's
    # ensemble-to-ensemble communication; trained statically, by dynamic sparse training or
    # with Hebbian rewiring (zoo.training.sparse).
    paper="""@article{konstantaropoulos2025g2gnet,
  title   = {Neuro-inspired Ensemble-to-Ensemble Communication Primitives for Sparse and Efficient {ANNs}},
  author  = {Konstantaropoulos, Orestis and Smirnakis, Stelios Manolis and Papadopouli, Maria},
  journal = {arXiv preprint arXiv:2508.14140},
  year    = {2025},
  url     = {https://arxiv.org/abs/2508.14140}
}""",
    tiny_config=dict(image_size=4, num_channels=1, hidden_sizes=[8, 6], num_ensembles=[4, 2], input_ensembles=4,
                     sparsity=0.5, num_labels=3),
)
