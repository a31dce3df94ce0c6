"""Built-in methods, one module each; :mod:`condsynth.registry` imports every module here, and
each registers its method with ``@register_method``."""
