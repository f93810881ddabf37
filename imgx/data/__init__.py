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


# Data sets whose held-out test split was drawn with the case seed before: their old ledger records are stale.
_SPLIT_BY_SPEC = {"photos", "photo-edits", "photo-pairs", "photo-styles", "folder", "folder-pairs"}


def fingerprint(spec) -> str:
    """A fingerprint of the data a ``DataSpec`` names, part of every case key.

    Embedded data sets are fixed by the version of the package that ships them; folders, files and roots by the
    content of every file the loader reads (an ``edit-csv``'s listed images and targets too), through the
    digest cache of :mod:`imgx.filehash`. Nothing is decoded here.
    """
    import hashlib
    import os
    from importlib import metadata

    from imgx.filehash import tree_digest

    h = hashlib.sha256(spec.name.encode())
    package = {"photos": "scikit-image", "digits": "scikit-learn", "photo-pairs": "scikit-image",
               "photo-styles": "scikit-image", "photo-edits": "scikit-image"}.get(spec.name)
    if package:
        h.update(metadata.version(package).encode())
    if spec.name in _SPLIT_BY_SPEC:
        h.update(b"|test split fixed by the data options")
    if spec.root:
        h.update(f"|root:{os.path.abspath(spec.root)}".encode())
    for field in ("path", "target", "input", "reference", "prompts"):  # the last four: task score's folders
        where = getattr(spec, field, None)
        if where:
            h.update(f"|{field}:{os.path.abspath(where)}:{tree_digest(where)}".encode())
    if spec.name in ("cifar10", "mnist"):
        for name, digest in _torchvision_files(spec):
            h.update(f"|{name}:{digest}".encode())
    if spec.name == "edit-csv" and spec.path:
        for name, digest in _edit_csv_files(spec.path):
            h.update(f"|{name}:{digest}".encode())
    return h.hexdigest()[:16]


def _torchvision_files(spec) -> list[tuple[str, str]]:
    """``(name, digest)`` of the files torchvision reads for ``cifar10`` / ``mnist`` under the data root."""
    from imgx.data.tv import CIFAR_FOLDER, MNIST_FILES, data_root
    from imgx.filehash import tree_digest

    root = data_root(spec)
    if spec.name == "cifar10":
        return [(CIFAR_FOLDER, tree_digest(root / CIFAR_FOLDER))]
    return [(name, tree_digest(root / "MNIST" / "raw" / name)) for name in MNIST_FILES]


def _edit_csv_files(path: str) -> list[tuple[str, str]]:
    """``(name, digest)`` of every image and target an ``edit-csv`` lists (paths relative to the CSV)."""
    import csv
    from pathlib import Path

    from imgx.filehash import file_digest

    csv_path = Path(path)
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []  # the loader and validate name the problem
    names = dict.fromkeys((row.get(col) or "").strip() for row in rows for col in ("image", "target")
                          if isinstance(row.get(col), str))
    return [(name, file_digest(csv_path.parent / name)) for name in names if name]
