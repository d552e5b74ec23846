"""ElemNet: the network, pre-training, fine-tuning, shipped source models and their model cards."""
