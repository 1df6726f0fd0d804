from .configuration_convnet import ConvNetConfig
from .modeling_convnet import ConvNetForImageClassification

ARCHITECTURE = dict(
    config_class=ConvNetConfig,
    model_class=ConvNetForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    description="Small CNN image classifier",
    paper="Convergent learning (A3) replicas and baselines (../shared/RESEARCH.md)",
    tiny_config=dict(image_size=8, num_channels=1, channels=[3, 4], hidden_size=6, num_labels=3),
)
