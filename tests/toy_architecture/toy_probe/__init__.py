# A toy architecture for tests/test_registry.py: copied into a temporary models path (with the
# shared files it imports) to show that a new folder needs no test edit. Not under zoo/models.
from .configuration_toy_probe import ToyProbeConfig
from .modeling_toy_probe import ToyProbeForImageClassification, ToyProbeModel

ARCHITECTURE = dict(
    config_class=ToyProbeConfig,
    base_model_class=ToyProbeModel,
    model_class=ToyProbeForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="Toy linear probe (tests only)",
    paper="""@misc{toy2026probe,
  title  = {A toy linear probe},
  author = {Zooscope tests},
  year   = {2026}
}""",
    tiny_config=dict(image_size=4, num_features=5, num_labels=3),
)
