from .configuration_ts_lstm import TSLSTMConfig
from .modeling_ts_lstm import TSLSTMForSequenceClassification, TSLSTMModel

ARCHITECTURE = dict(
    config_class=TSLSTMConfig,
    base_model_class=TSLSTMModel,
    model_class=TSLSTMForSequenceClassification,
    task_auto_class="AutoModelForSequenceClassification",
    description="TS-LSTM: one LSTM over each temporal segment of a sequence, the segments' states fused",
    paper="""@article{ma2017tslstm,
  title   = {TS-LSTM and Temporal-Inception: Exploiting Spatiotemporal Dynamics for Activity Recognition},
  author  = {Ma, Chih-Yao and Chen, Min-Hung and Kira, Zsolt and AlRegib, Ghassan},
  journal = {arXiv preprint arXiv:1703.10667},
  year    = {2017}
}""",
    tiny_config=dict(input_size=3, hidden_size=4, num_segments=2, num_labels=3),
)
