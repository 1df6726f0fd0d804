from .configuration_one_layer_transformer import OneLayerTransformerConfig
from .modeling_one_layer_transformer import OneLayerTransformerForSequenceMaps, OneLayerTransformerModel

ARCHITECTURE = dict(
    config_class=OneLayerTransformerConfig,
    base_model_class=OneLayerTransformerModel,
    model_class=OneLayerTransformerForSequenceMaps,
    task_auto_class="AutoModelForSequenceClassification",
    pipeline_tag="tabular-regression",  # a sequence of numbers in, one number per position out
    input_kind="sequence",
    description="One self-attention layer + one ReLU feed-forward layer on scalar sequences (seq2seq universal approximation)",
    paper="""@article{gumaan2025universal,
  title   = {Universal Approximation Theorem for a Single-Layer Transformer},
  author  = {Gumaan, Esmail},
  journal = {arXiv preprint arXiv:2507.10581},
  year    = {2025},
  eprint  = {2507.10581},
  archivePrefix = {arXiv},
  url     = {https://arxiv.org/abs/2507.10581}
}""",
    tiny_config=dict(num_labels=3, hidden_size=4, num_heads=2, ffn_size=6),
)
