"""Training loops: supervised (fixed epochs over preloaded tensors) and adversarial (GAN)."""
