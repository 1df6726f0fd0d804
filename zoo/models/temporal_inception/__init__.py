from .configuration_temporal_inception import TemporalInceptionConfig
from .modeling_temporal_inception import TemporalInceptionForSequenceClassification, TemporalInceptionModel

ARCHITECTURE = dict(
    config_class=TemporalInceptionConfig,
    base_model_class=TemporalInceptionModel,
    model_class=TemporalInceptionForSequenceClassification,
    task_auto_class="AutoModelForSequenceClassification",
    description="Temporal-Inception: multi-kernel 1-D temporal convolutions over the per-step feature matrix",
    paper="""@article{ma2017tslstm,
  title   = {TS-LSTM and Temporal-Inception: Exploiting Spatiotemporal Dynamics for Activity Recognition},
  author  = {Ma, Chih-Yao and Chen, Min-Hung and Kira, Zsolt and AlRegib, Ghassan},
  journal = {arXiv preprint arXiv:1703.10667},
  year    = {2017}
}""",
    tiny_config=dict(input_size=3, channels=2, kernel_sizes=[1, 3], num_blocks=2, num_labels=3),
)
