"""Training loops over preloaded tensors: supervised, adversarial (GAN), translation (pix2pix, CycleGAN), contrastive
(CLIP) and latent diffusion; ``flat`` packs a loop's parameters into one buffer for a cheaper optimizer step."""
