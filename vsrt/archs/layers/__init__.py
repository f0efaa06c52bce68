"""Building blocks shared by several architectures."""
