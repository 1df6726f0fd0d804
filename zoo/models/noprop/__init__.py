from .configuration_noprop import NoPropConfig
from .modeling_noprop import NoPropForImageClassification, NoPropModel

ARCHITECTURE = dict(
    config_class=NoPropConfig,
    base_model_class=NoPropModel,
    model_class=NoPropForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="NoProp-DT: T locally trained label-denoising blocks (no forward or backward propagation in training)",
    # Trained by zoo.training.noprop (training.trainer: noprop); the default loop back-propagates
    # through the chain instead (the paper's backprop baseline with the same blocks).
    paper="""@article{li2025noprop,
  title   = {{NoProp}: Training Neural Networks without Back-propagation or Forward-propagation},
  author  = {Li, Qinyu and Teh, Yee Whye and Pascanu, Razvan},
  journal = {arXiv preprint arXiv:2503.24322},
  year    = {2025}
}""",
    tiny_config=dict(image_size=4, num_channels=1, num_blocks=3, hidden_size=6, num_labels=3),
)
