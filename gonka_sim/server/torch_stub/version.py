"""torch.version of the stand-in."""

__version__ = "2.6.0+cu124"
cuda = "12.4"
git_version = "sim"
