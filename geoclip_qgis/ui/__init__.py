"""The dock: its tabs, the run controls that start Processing algorithms as tasks."""
