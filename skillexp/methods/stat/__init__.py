"""STAT (Skill-Targeted Adaptive Training, arXiv 2510.10023): a teacher profiles the skills the student misses on
difficult validation questions, then training data is selected (`stat_sel`) or synthesised (`stat_syn`) for them.
`build.build_stat` runs the steps; each module holds one of them."""
