"""CNN backbones trained by this project (Keras 3)."""
