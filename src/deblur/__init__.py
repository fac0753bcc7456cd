"""deblur: restore shaky and motion-blurred photos.

The public API imports torch only when first used::

    from deblur import load_model, Restorer, read_photo, write_photo
    from deblur.samplers import direct
    from deblur.devices import choose

    model = load_model("xydeblur", weights="model.safetensors")
    restorer = Restorer(direct(model.network), choose("auto"), model.spec.size_multiple, model.bytes_per_pixel)
    photo = read_photo("shaky.jpg")
    photo.pixels, report = restorer.restore(photo.pixels)
    write_photo(photo, "shaky_deblur.jpg")
"""

__version__ = "0.1.0"

_LAZY = {
    "load_model": "deblur.weights",
    "Restorer": "deblur.restore",
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
