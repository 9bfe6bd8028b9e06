"""Reports over a sweep's run dirs: method × task-variant tables with statistics over seeds, paired comparisons
with a baseline, and figures.

collect (find and group runs) → scores (per-question scores from the generations) → stats (pure statistics) →
tables / compare / plots → publish (W&B) → cli.
"""
