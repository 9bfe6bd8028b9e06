"""Reports over a sweep's run dirs: method × task-variant tables with statistics over seeds, and figures.

collect (find and group runs) → stats (pure statistics) → tables / plots → publish (W&B) → cli.
"""
