"""PSNR (its code: cvae.core.metrics), kept at the name the results contract documents."""
from cvae.core.metrics import copy_first_frame_psnr, psnr, psnr_per_frame

__all__ = ["copy_first_frame_psnr", "psnr", "psnr_per_frame"]
