"""Hydra configuration shipped inside the package (conf/ at the repository root links here)."""
