"""What every model family shares (docs/ARCHITECTURE.md): config base and checks,
image I/O, staged dataset output, the training helpers, the checkpoint format,
schedules, metrics, precision, RNG state, the family registry and the CLI
dispatch. It imports no family: a family's folder imports it."""
