"""Entry points (the only modules that read Hydra configs)."""
