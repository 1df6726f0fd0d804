from .configuration_sparse_rnn import SparseRNNConfig
from .modeling_sparse_rnn import SparseRNNForSequenceClassification, SparseRNNModel

ARCHITECTURE = dict(
    config_class=SparseRNNConfig,
    base_model_class=SparseRNNModel,
    model_class=SparseRNNForSequenceClassification,
    task_auto_class="AutoModelForSequenceClassification",
    description="Sparse RNN: recurrent connections along a random graph (Watts-Strogatz, Barabasi-Albert, Erdos-Renyi)",
    # RESEARCH.md E1: Darji's thesis; its reference code is harshildarji/thesis
    paper="""@mastersthesis{darji2024investigating,
  title   = {Investigating Sparsity in Recurrent Neural Networks},
  author  = {Darji, Harshil},
  school  = {University of Passau},
  year    = {2024}
}""",
    tiny_config=dict(input_size=3, hidden_size=6, cell="gru", graph="watts_strogatz", graph_k=2, graph_p=0.3, num_labels=3),
)
