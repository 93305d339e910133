"""The 2023 Lab4 (Lab5 in some years) model family: an SVG-style CVAE on BAIR robot pushing.

config.py (BairConfig), data.py (the processed BAIR layout), synthetic.py (generated
data in that layout), model.py (VGG64 encoder/decoder, LSTMs), train.py (step,
validation, Trainer, fit), predict.py (GIFs + PSNR CSV). Registered as `bair-2023`
by cvae/families/bair_2023.py. Described in docs/BAIR-2023.md.
"""
