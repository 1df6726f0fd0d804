from .configuration_convnet import ConvNetConfig
from .modeling_convnet import ConvNetForImageClassification, ConvNetModel

ARCHITECTURE = dict(
    config_class=ConvNetConfig,
    base_model_class=ConvNetModel,
    model_class=ConvNetForImageClassification,
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="Small CNN image classifier",
    # The convolution → pooling → fully connected classifier of LeCun et al.; the zoo's CNN
    # replicas (convergent learning, Li et al. 2016) use this family.
    paper="""@article{lecun1998gradient,
  title   = {Gradient-based learning applied to document recognition},
  author  = {LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},
  journal = {Proceedings of the IEEE},
  volume  = {86},
  number  = {11},
  pages   = {2278--2324},
  year    = {1998},
  doi     = {10.1109/5.726791}
}""",
    tiny_config=dict(image_size=8, num_channels=1, channels=[3, 4], hidden_size=6, num_labels=3),
)
