"""Data set registry. ``meta["tasks"]`` lists the tasks a data set can feed; ``meta["options"]`` its keys."""

from imgx.registry import Registry

DATASETS = Registry("data set")
DATASETS.register("photos", "imgx.data.photos:load", tasks={"colorize", "edit"},
                  options={"image_size", "train", "test", "count", "test_photos", "photos"},
                  help="colour photos shipped inside scikit-image (crops for colorize, whole for edit)")
DATASETS.register("cifar10", "imgx.data.tv:load_cifar10", tasks={"colorize"},
                  options={"image_size", "train", "test", "root", "download"},
                  help="torchvision CIFAR-10 from a local root (or downloaded when allowed)")
DATASETS.register("digits", "imgx.data.digits:load", tasks={"generate"}, options={"image_size", "train", "test"},
                  help="handwritten digits shipped inside scikit-learn, upscaled")
DATASETS.register("mnist", "imgx.data.tv:load_mnist", tasks={"generate"},
                  options={"image_size", "train", "test", "root", "download"},
                  help="torchvision MNIST from a local root (or downloaded when allowed)")
DATASETS.register("folder", "imgx.data.folder:load", tasks={"colorize", "generate", "edit"},
                  options={"image_size", "train", "test", "count", "path"},
                  help="a folder of the user's own images")
DATASETS.register("edit-csv", "imgx.data.folder:load_edit_csv", tasks={"edit"},
                  options={"image_size", "count", "path"},
                  help="a CSV of image path, instruction and optional input/output captions and target")
DATASETS.register("photo-edits", "imgx.data.photo_edits:load", tasks={"edit"},
                  options={"image_size", "train", "test", "instructions", "photos", "test_photos"},
                  help="photo crops with instructions and their exact edited targets (held-out test photos)")


def fingerprint(spec) -> str:
    """A cheap fingerprint of the data a ``DataSpec`` names, part of every case key.

    Embedded data sets are fixed by the version of the package that ships them; folders and roots by the
    names, sizes and modification times of their files. Nothing is decoded here.
    """
    import hashlib
    import os
    from importlib import metadata

    h = hashlib.sha256(spec.name.encode())
    package = {"photos": "scikit-image", "photo-edits": "scikit-image", "digits": "scikit-learn"}.get(spec.name)
    if package:
        h.update(metadata.version(package).encode())
    for where in (spec.root, spec.path):
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
