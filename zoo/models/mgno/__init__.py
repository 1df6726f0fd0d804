from .configuration_mgno import MgNOConfig
from .modeling_mgno import MgNOForOperatorLearning, MgNOModel

ARCHITECTURE = dict(
    config_class=MgNOConfig,
    base_model_class=MgNOModel,
    model_class=MgNOForOperatorLearning,
    task_auto_class="AutoModelForImageToImage",
    pipeline_tag="image-to-image",  # a coefficient field in, a solution field out
    input_kind="grid",
    output="field",
    description="MgNO multigrid neural operator: every linear map between layers a V-cycle of learned convolutions; fields in, fields out",
    paper="""@inproceedings{he2024mgno,
  title     = {{MgNO}: Efficient Parameterization of Linear Operators via Multigrid},
  author    = {He, Juncai and Liu, Xinliang and Xu, Jinchao},
  booktitle = {The Twelfth International Conference on Learning Representations},
  year      = {2024},
  eprint    = {2310.19809},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/2310.19809}
}""",
    tiny_config=dict(resolution=8, num_channels=3, num_layers=2, num_levels=2),
)
