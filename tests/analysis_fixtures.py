"""The analysis tests' fixtures now live in analysis.testing (benchmarks import them too);
re-exported here for the tests that import ``.analysis_fixtures``."""
from analysis.testing import (COMMON, CORE, FAMILIES, VOCAB, make_tiny, make_tokenizer, random_prompts, save_tiny,
                              smollm_gguf)

__all__ = ["VOCAB", "COMMON", "FAMILIES", "CORE", "make_tiny", "random_prompts", "make_tokenizer", "save_tiny",
           "smollm_gguf"]
