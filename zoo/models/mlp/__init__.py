from .configuration_mlp import MLPConfig
from .modeling_mlp import MLPForImageClassification, MLPModel

ARCHITECTURE = dict(
    config_class=MLPConfig,
    base_model_class=MLPModel,
    model_class=MLPForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="Deep MLP image classifier",
    # The multilayer perceptron trained by back-propagation: the baseline of the zoo's deep-learning papers.
    paper="""@article{rumelhart1986learning,
  title   = {Learning representations by back-propagating errors},
  author  = {Rumelhart, David E. and Hinton, Geoffrey E. and Williams, Ronald J.},
  journal = {Nature},
  volume  = {323},
  number  = {6088},
  pages   = {533--536},
  year    = {1986},
  doi     = {10.1038/323533a0}
}""",
    tiny_config=dict(image_size=6, num_channels=1, hidden_sizes=[8, 5], num_labels=3),
)
