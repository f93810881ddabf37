"""Data set registry. ``meta["tasks"]`` lists the tasks a data set can feed; ``meta["options"]`` its keys;
``meta["captions"]`` says whether it gives image captions (``text-to-image`` prompts and training)."""

from imgx.registry import Registry

DATASETS = Registry("data set")
DATASETS.register("photos", "imgx.data.photos:load", tasks={"colorize", "edit", "text-to-image"},
                  options={"image_size", "train", "test", "count", "test_photos", "photos"},
                  help="colour photos shipped inside scikit-image (crops for colorize, whole for edit)")
DATASETS.register("cifar10", "imgx.data.tv:load_cifar10", tasks={"colorize"},
                  options={"image_size", "train", "test", "root", "download"},
                  help="torchvision CIFAR-10 from a local root (or downloaded when allowed)")
DATASETS.register("digits", "imgx.data.digits:load", tasks={"generate", "text-to-image"},
                  options={"image_size", "train", "test"}, captions=True,
                  help="handwritten digits shipped inside scikit-learn, upscaled; captions 'a handwritten digit N'")
DATASETS.register("mnist", "imgx.data.tv:load_mnist", tasks={"generate"},
                  options={"image_size", "train", "test", "root", "download"},
                  help="torchvision MNIST from a local root (or downloaded when allowed)")
DATASETS.register("folder", "imgx.data.folder:load", tasks={"colorize", "generate", "edit", "text-to-image"},
                  options={"image_size", "train", "test", "count", "path"},
                  help="a folder of the user's own images")
DATASETS.register("edit-csv", "imgx.data.folder:load_edit_csv", tasks={"edit"},
                  options={"image_size", "count", "path"},
                  help="a CSV of image path, instruction and optional input/output captions and target")
DATASETS.register("photo-pairs", "imgx.data.photo_pairs:load", tasks={"translate", "colorize"},
                  options={"image_size", "train", "test", "test_photos", "photos", "pair"},
                  help="paired crops of the embedded photos: pair edges, gray or blur -> photo (exact targets)")
DATASETS.register("photo-styles", "imgx.data.photo_styles:load", tasks={"translate"}, paired=False,
                  options={"image_size", "train", "test", "test_photos", "photos", "style", "direction"},
                  help="unpaired photo crops (A) and styled crops of other photos (B); the true B of each test A known")
DATASETS.register("folder-pairs", "imgx.data.folder_pairs:load", tasks={"translate"},
                  options={"image_size", "train", "test", "path"},
                  help="a user's own pairs: path/a/NAME and path/b/NAME, paired by file name")

# The input of each photo-pairs pair: a known function of the photo crop, (N, H, W, 3) uint8 -> uint8.
PAIRS = Registry("pair")
PAIRS.register("edges", "imgx.data.photo_pairs:edges", help="Canny edges (sigma 1), black on white -> photo")
PAIRS.register("gray", "imgx.data.photo_pairs:gray", help="grayscale (ITU-R 601 luma) -> colour photo")
PAIRS.register("blur", "imgx.data.photo_pairs:blur", help="Gaussian blur (sigma 1.5) -> sharp photo")

# The styles of photo-styles' domain B, each a known function of a photo crop.
STYLES = Registry("style")
STYLES.register("sepia", "imgx.data.photo_styles:sepia", help="the classic sepia colour matrix")
STYLES.register("sketch", "imgx.data.photo_styles:sketch", help="pencil sketch: gray dodged by its blurred negative")
STYLES.register("winter", "imgx.data.photo_styles:winter", help="cold, washed out: desaturated, blue-shifted, lifted")
DATASETS.register("photo-edits", "imgx.data.photo_edits:load", tasks={"edit"},
                  options={"image_size", "train", "test", "instructions", "photos", "test_photos"},
                  help="photo crops with instructions and their exact edited targets (held-out test photos)")
DATASETS.register("outputs", "imgx.data.outputs:load", tasks={"score"},
                  options={"path", "target", "input", "reference", "prompts", "image_size"},
                  help="images made elsewhere (path) matched by file name to target/input folders; a reference "
                       "folder for FID/KID; a prompts CSV (file,prompt)")


def fingerprint(spec) -> str:
    """A cheap fingerprint of the data a ``DataSpec`` names, part of every case key.

    Embedded data sets are fixed by the version of the package that ships them; folders and roots by the
    names, sizes and modification times of their files. Nothing is decoded here.
    """
    import hashlib
    import os
    from importlib import metadata

    h = hashlib.sha256(spec.name.encode())
    package = {"photos": "scikit-image", "digits": "scikit-learn", "photo-pairs": "scikit-image",
               "photo-styles": "scikit-image", "photo-edits": "scikit-image"}.get(spec.name)
    if package:
        h.update(metadata.version(package).encode())
    for where in (spec.root, spec.path, spec.target, spec.input, spec.reference, spec.prompts):
        if not where:
            continue
        h.update(os.path.abspath(where).encode())
        if os.path.isdir(where):
            for dirpath, dirnames, filenames in os.walk(where):
                dirnames.sort()
                for name in sorted(filenames):
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except OSError:
                        continue
                    h.update(f"{os.path.relpath(os.path.join(dirpath, name), where)}:{st.st_size}:{st.st_mtime_ns}"
                             .encode())
        elif os.path.isfile(where):
            st = os.stat(where)
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
