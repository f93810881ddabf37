"""Tasks: the only modules that know the steps of a task. Each exposes ``run(case, ctx) -> CaseResult``."""

from imgx.registry import Registry

TASKS = Registry("task")
TASKS.register("colorize", "imgx.tasks.colorize:run", help="train a grayscale-to-colour model, score the test split")
TASKS.register("generate", "imgx.tasks.generate:run", help="train a GAN from noise, score samples with FID/KID")
TASKS.register("edit", "imgx.tasks.edit:run", help="text-guided editing with a diffusion pipeline, swept")
TASKS.register("translate", "imgx.tasks.translate:run",
               help="train pix2pix (paired) or CycleGAN (unpaired) to fixed epochs, score A->B vs identity/untrained")
TASKS.register("text-to-image", "imgx.tasks.text_to_image:run",
               help="Stable Diffusion text-to-image: prompts to images, swept; CLIP score, FID/KID, prompt accuracy")
TASKS.register("score", "imgx.tasks.score:run",
               help="score images made elsewhere (data: outputs): paired metrics, FID/KID, CLIP; no model runs")
