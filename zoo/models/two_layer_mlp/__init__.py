from .configuration_two_layer_mlp import TwoLayerMLPConfig
from .modeling_two_layer_mlp import TwoLayerMLPModel

ARCHITECTURE = dict(
    config_class=TwoLayerMLPConfig,
    model_class=TwoLayerMLPModel,
    task_auto_class=None,
    description="One-hidden-layer network (relu | tanh | quadratic | ...), optional fixed second layer",
    paper="Theory papers B1-B5 (../shared/RESEARCH.md)",
    tiny_config=dict(input_dim=6, hidden_dim=8, num_labels=3),
)
