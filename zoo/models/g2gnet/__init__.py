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
    paper="""@article{g2gnet2025,
  title   = {Neuro-inspired Ensemble-to-Ensemble Communication Primitives for Sparse and Efficient {ANNs}},
  author  = {{G2GNet authors}},
  journal = {arXiv preprint},
  year    = {2025}
}""",
    tiny_config=dict(image_size=4, num_channels=1, hidden_sizes=[8, 6], num_ensembles=[4, 2], input_ensembles=4,
                     sparsity=0.5, num_labels=3),
)
