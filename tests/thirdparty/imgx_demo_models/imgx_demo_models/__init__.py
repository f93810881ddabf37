"""Models of a team that is not imgx: a colorizer, an editor, a text-to-image painter and a GAN (tests only)."""
