"""SkillFactory (arXiv 2512.04072): silver traces stitched from the model's own attempts and reflections."""
