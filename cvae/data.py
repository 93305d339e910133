"""The Lab4 data loader (its code: cvae/families/lab4_2024/data.py), kept at the
name the results contract documents: `cvae.data.load_split`."""
from cvae.families.lab4_2024.data import LabData, load_lab_data, load_split

__all__ = ["LabData", "load_lab_data", "load_split"]
