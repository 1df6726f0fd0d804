from transformers import PretrainedConfig

from .zoo_common import label_kwargs, positive_int


class ToyProbeConfig(PretrainedConfig):
    model_type = "toy_probe"

    def __init__(self, image_size: int = 4, num_channels: int = 1, num_features: int = 5, num_labels=None, **kwargs):
        kwargs = label_kwargs(num_labels, kwargs, default=3)
        self.image_size = positive_int("image_size", image_size)
        self.num_channels = positive_int("num_channels", num_channels)
        self.num_features = positive_int("num_features", num_features)
        super().__init__(**kwargs)
