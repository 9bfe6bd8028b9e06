"""Teachers for STAT: one interface (base.Teacher), API / local-model / oracle backends."""
