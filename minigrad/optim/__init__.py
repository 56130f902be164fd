"""Optimisers with torch.optim's update rules: ``SGD``, ``Adam``, ``AdamW`` (base class ``Optimizer``)."""
from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer"]
