"""deblur: restore shaky and motion-blurred photos.

The public API imports torch only when first used::

    import deblur

    sharp = deblur.restore("shaky.jpg")  # a PIL image, EXIF and ICC kept; also PIL, numpy, torch in
    deblur.restore("shaky.jpg", output="shaky_deblur.jpg", model="shake")

    restorer = deblur.Deblurrer(model="xydeblur", device="auto")  # load once, restore many
    for path in paths:
        restorer.restore(path, output=path.with_stem(path.stem + "_deblur"))
    restorer.adapt(image, iters=20)
    deblur.score("shaky.jpg")  # blur left: the width of the strongest edges in px; no model needed
"""

__version__ = "0.1.0"

_LAZY = {
    "restore": "deblur.deblurrer",
    "Deblurrer": "deblur.deblurrer",
    "score": "deblur.deblurrer",
    "load_model": "deblur.weights",
    "Restorer": "deblur.restorer",
    "read_photo": "deblur.imageio",
    "write_photo": "deblur.imageio",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    # Lazy so that `import deblur` (and `deblur --help`) never pays for torch.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deblur' has no attribute '{name}'")
