"""The run folder's contract, on a floor below search/ and reports/: the names
search/ writes into `runs/<name>/` (trials.csv's columns, statuses and phases,
summary.json's fields), their reader and writer, and the one rule that decides
how a trial ended. Standard library only: reports/ reads a run folder through it
without importing search/ (docs/ARCHITECTURE.md)."""
