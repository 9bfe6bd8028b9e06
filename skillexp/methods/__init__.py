"""SFT-data methods: each turns (base model, task) into a dataset of chat conversations."""
