"""One sub-package per architecture: configuration_<arch>.py + modeling_<arch>.py (+ shared files).

Each folder is self-contained (torch, transformers, the standard library and its own siblings
only), because the Hub runs those files as remote code where zooscope is not installed. Files
several folders need (zoo_common.py: config validation, the loss, version-guarded init; the
image processor) have one source in ``_shared/`` and byte-identical copies in the folders
(``python -m zoo.models._shared`` refreshes them; a test fails on drift).

A family follows transformers' layout: ``XPreTrainedModel`` (config_class, base_model_prefix,
main_input_name, _no_split_modules, _init_weights), a backbone ``XModel`` (what AutoModel
returns) and a task head (``XForImageClassification``, ...), ``return_dict`` honoured.
The folder's ``__init__.py`` declares ``ARCHITECTURE`` for the registry, with the paper as
BibTeX. Folders in $ZOO_MODELS_PATH (os.pathsep-separated) are discovered as well.
"""
