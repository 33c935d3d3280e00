"""Neural image feature extractors in plain PyTorch: torchvision-layout ResNets and the
SimCLR v1/v2 encoders, with local weights only and a DataLoader pipeline.

torch is an optional extra (``featbench[neural]``) and the extractor registry imports
every module of this package, so no public module here imports torch at module level.
The network definitions that need ``torch.nn`` at class-definition time live in
``_resnet.py`` and ``_simclr.py``: module names starting with ``_`` are skipped by
registry discovery and are imported only once torch is known to be installed.
"""
