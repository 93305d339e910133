"""The Lab4 conditional VAE: model, data, schedules and training loop.

This package knows nothing of Ray, Optuna or Plotly: search/ and reports/ use it.
"""
