from .configuration_mlp import MLPConfig
from .modeling_mlp import MLPForImageClassification

ARCHITECTURE = dict(
    config_class=MLPConfig,
    model_class=MLPForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    description="Deep MLP image classifier",
    paper="Baseline for C1-C6 and A3 (../shared/RESEARCH.md)",
    tiny_config=dict(image_size=6, num_channels=1, hidden_sizes=[8, 5], num_labels=3),
)
