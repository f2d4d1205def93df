"""The version of fastmlp (its own module, so that modules inside the package read it
without importing the package)."""
__version__ = "0.1.0"
