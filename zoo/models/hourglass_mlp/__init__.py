from .configuration_hourglass_mlp import HourglassMLPConfig
from .modeling_hourglass_mlp import HourglassMLPForImageRegression, HourglassMLPModel

ARCHITECTURE = dict(
    config_class=HourglassMLPConfig,
    base_model_class=HourglassMLPModel,
    model_class=HourglassMLPForImageRegression,
    # vector outputs on images: AutoModelForImageClassification's calling convention (logits);
    # the denoising recipe is a regressor (problem_type: regression, its card's task image-to-image)
    task_auto_class="AutoModelForImageClassification",
    image_processor_class="image_processing_zoo.ZooImageProcessor",
    description="Residual MLP, Hourglass (wide-narrow-wide, fixed random lift) or conventional blocks",
    paper="""@article{chen2025rethinking,
  title   = {Rethinking the shape convention of an {MLP}},
  author  = {Chen, Meng-Hsi and Lee, Yu-Ang and Liao, Feng-Ting and Shiu, Da-shan},
  journal = {arXiv preprint arXiv:2510.01796},
  year    = {2025}
}""",
    tiny_config=dict(image_size=4, num_channels=1, block_shape="hourglass", stream_size=12, hidden_size=3,
                     depth=2, num_labels=3),
)
