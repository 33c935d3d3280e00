"""`bench finetune`: contrastive (SimCLR NT-Xent) fine-tuning of our encoders, on CPU or
many GPUs, with a checkpoint per epoch that an experiment's weights sweep evaluates.

torch is imported inside functions or in modules that only the training path imports, so
importing this package (the CLI does) needs neither torch nor kornia.
"""
