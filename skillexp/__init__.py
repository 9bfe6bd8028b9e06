"""skillexp: skill-targeted post-training studies."""
