"""Loading prepared manifests: PyTorch datasets and Hugging Face datasets."""

from polypbench.load.crop import crop_window
from polypbench.load.hf import load_hf
from polypbench.load.torch_dataset import PolypFrames, load_split

__all__ = ["PolypFrames", "crop_window", "load_hf", "load_split"]
