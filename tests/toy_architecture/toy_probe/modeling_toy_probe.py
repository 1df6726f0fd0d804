import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutputWithNoAttention

from .configuration_toy_probe import ToyProbeConfig
from .zoo_common import classification_loss, init, return_tuple


class ToyProbePreTrainedModel(PreTrainedModel):
    config_class = ToyProbeConfig
    base_model_prefix = "probe"
    main_input_name = "pixel_values"

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=0.1)
            init.zeros_(module.bias)

    @property
    def dummy_inputs(self):
        c = self.config
        return {"pixel_values": torch.rand(3, c.num_channels, c.image_size, c.image_size)}


class ToyProbeModel(ToyProbePreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.proj = nn.Linear(config.num_channels * config.image_size**2, config.num_features)
        self.post_init()

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None, **kwargs):
        x = pixel_values.flatten(1)
        h = torch.tanh(self.proj(x))
        want = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        out = BaseModelOutput(last_hidden_state=h, hidden_states=(x, h) if want else None)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out


class ToyProbeForImageClassification(ToyProbePreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.probe = ToyProbeModel(config)
        self.classifier = nn.Linear(config.num_features, config.num_labels)
        self.post_init()

    def forward(self, pixel_values, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        base = self.probe(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(base.last_hidden_state)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        out = ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out.to_tuple() if return_tuple(self.config, return_dict) else out
