"""Data loaders: FER-2013 (image folders and the Kaggle csv) and MPII Human Pose."""

from emotify_ml.data.fer2013 import FERData, load_fer2013, load_fer2013_csv, load_fer2013_folder

__all__ = ["FERData", "load_fer2013", "load_fer2013_csv", "load_fer2013_folder"]
