from .configuration_rnn_classifier import RNNClassifierConfig
from .modeling_rnn_classifier import RNNClassifierForSequenceClassification, RNNClassifierModel

ARCHITECTURE = dict(
    config_class=RNNClassifierConfig,
    base_model_class=RNNClassifierModel,
    model_class=RNNClassifierForSequenceClassification,
    task_auto_class="AutoModelForSequenceClassification",
    description="Recurrent sequence classifier: tanh / ReLU / GRU / LSTM cells, stacked, bidirectional, masked padding",
    # the zoo's recurrent baselines (RESEARCH.md E2): Lipton, Berkowitz and Elkan's review of
    # Elman networks, LSTMs and bidirectional RNNs
    paper="""@article{lipton2015critical,
  title   = {A Critical Review of Recurrent Neural Networks for Sequence Learning},
  author  = {Lipton, Zachary C. and Berkowitz, John and Elkan, Charles},
  journal = {arXiv preprint arXiv:1506.00019},
  year    = {2015}
}""",
    tiny_config=dict(input_size=3, hidden_size=4, num_layers=2, cell="lstm", bidirectional=True, num_labels=3),
)
