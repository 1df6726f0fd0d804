"""One sub-package per architecture: configuration_<arch>.py + modeling_<arch>.py.

Each folder is self-contained (torch, transformers, the standard library and its own siblings
only), because the Hub runs those two files as remote code where zooscope is not installed.
The folder's ``__init__.py`` declares ``ARCHITECTURE`` for the registry.
"""
