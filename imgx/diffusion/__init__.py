"""Diffusion pieces shared by the diffusion tasks (``edit``, ``text-to-image``); imports no torch at import time."""
