"""Model registry. Entries are lazy so that validating a suite never imports diffusers or transformers.

``meta["task"]`` names the task a model serves; ``meta["options"]`` the ``model:`` keys it accepts;
``meta["pipeline"]`` marks a loader of diffusers pipelines (every other edit / text-to-image model is a callable);
``meta["trainer"]`` names the adversarial loop of a translation model that carries its own discriminators (every
other translation model is trained by imgx's supervised loop).
Names that other packages register through the entry-point group ``imgx.models`` join it (``meta["plugin"]``: the
distribution; their task and options are known only once imported, at run time). What a model of each task must
be is :mod:`imgx.models.protocol`.
``meta["call_args"]`` (diffusion models) the ``inference:`` settings its pipelines' ``__call__`` takes.
"""

from imgx.registry import Registry

MODELS = Registry("model")
MODELS.register("encoder-decoder", "imgx.models.colorizer:EncoderDecoder", task="colorize", options=set(),
                help="the recipe's CNN colorizer: Conv 1-32-64 stride 2, ConvTranspose 64-32-3, Tanh")
MODELS.register("unet", "imgx.models.colorizer:UNetColorizer", task="colorize", options=set(),
                help="the same encoder-decoder with skip connections (U-Net)")
MODELS.register("dcgan", "imgx.models.dcgan:DCGAN", task="generate", options={"latent_dim"},
                help="DCGAN: noise (latent_dim) to 28x28x1 in [-1, 1], BCE, balanced updates")
MODELS.register("instruct-pix2pix", "imgx.models.instruct_pix2pix:load_pipeline", task="edit", pipeline=True,
                options={"weights", "dtype", "safety_checker", "variant", "attention", "compile", "channels_last"},
                call_args={"guidance_scale", "num_inference_steps", "image_guidance_scale"},
                help="diffusers StableDiffusionInstructPix2PixPipeline: hub id, local folder or 'tiny'")
MODELS.register("diffusers-img2img", "imgx.models.instruct_pix2pix:load_pipeline", task="edit", pipeline=True,
                options={"weights", "dtype", "safety_checker", "variant", "attention", "compile", "channels_last"},
                call_args={"guidance_scale", "num_inference_steps", "strength"},
                help="any diffusers image-to-image pipeline (SD 1/2, SDXL img2img) via AutoPipelineForImage2Image: "
                     "hub id, local folder or 'tiny'")
MODELS.register("pix2pix", "imgx.models.pix2pix:Pix2Pix", task="translate", trainer="pix2pix",
                options={"loss", "lambda_l1", "depth", "width"}, needs_pairs=True, halvings=("depth", 5),
                help="U-Net generator + conditional PatchGAN; loss l1, gan or l1+gan (lambda_l1 100), Adam betas 0.5")
MODELS.register("cyclegan", "imgx.models.cyclegan:CycleGAN", task="translate", trainer="cyclegan",
                options={"width", "blocks", "lambda_cycle", "lambda_identity"}, needs_pairs=False, halvings=(None, 2),
                help="two ResNet generators, two PatchGANs; LSGAN, lambda_cycle 10, lambda_identity 0.5, pool 50")

MODELS.register("stable-diffusion", "imgx.models.instruct_pix2pix:load_pipeline", task="text-to-image", pipeline=True,
                options={"weights", "dtype", "safety_checker", "variant", "attention", "compile", "channels_last"},
                call_args={"guidance_scale", "num_inference_steps"},
                help="diffusers StableDiffusionPipeline (SDXL/SD-turbo via AutoPipelineForText2Image): hub id, "
                     "local folder, 'tiny' or 'train' (a micro model trained here on the case's captioned data)")
MODELS.register("outputs", "imgx.tasks.score:OUTPUTS", task="score", options=set(),
                help="images made elsewhere: the folder named by data: outputs (the default model of task: score)")

ENTRY_POINT_GROUP = "imgx.models"
MODELS.add_entry_points(ENTRY_POINT_GROUP, task=None, options=None)

SCHEDULERS = Registry("scheduler")
for _name, _cls in {
    "euler-ancestral": "EulerAncestralDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "ddim": "DDIMScheduler",
    "dpm++-2m": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}.items():
    SCHEDULERS.register(_name, f"diffusers:{_cls}", help=f"diffusers.{_cls}")
