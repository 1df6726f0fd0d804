from .configuration_residual_cnn import ResidualCNNConfig
from .modeling_residual_cnn import ResidualCNNForImageClassification, ResidualCNNModel

ARCHITECTURE = dict(
    config_class=ResidualCNNConfig,
    base_model_class=ResidualCNNModel,
    model_class=ResidualCNNForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="Residual CNN, deep (sequential) or shallow-parallel layout",
    # The deep stack prod(I + F_i) against the single wide layer I + sum F_i of the same branches.
    paper="""@article{bermeitinger2023make,
  title   = {Make Deep Networks Shallow Again},
  author  = {Bermeitinger, Bernhard and Hrycej, Tomas and Handschuh, Siegfried},
  journal = {arXiv preprint arXiv:2309.08414},
  year    = {2023},
  doi     = {10.48550/arXiv.2309.08414}
}""",
    tiny_config=dict(image_size=6, num_channels=1, filters=3, depth=2, kernel_size=3, num_labels=3),
)
