"""The plumbing every experiment shares, on top of the measurements: command line and config (cli, config),
the run folder and its reader (runlog, checkpoint), seeding and portable kernels (seeding,
portable_kernels.sh), evaluation schedules (schedules), torchrun (distributed), what every training loop
does at its start, each step and each epoch's end (loop), one split's metrics across ranks (evaluation),
and Markdown tables and the seed band (tables).

The public names are in `common` (`from common import RunLog, parse`).
"""
