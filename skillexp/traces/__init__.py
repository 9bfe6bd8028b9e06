"""Reading a model's sampled traces, for the data methods and the evals alike: the reasoning-trace format
(`format.py`: attempts, reflections, verdicts, the budget-forcing trigger) and whether a question is difficult for
the model (`difficulty.py`: by ground truth, by answer consistency, or by a process reward model, `prm.py`)."""
