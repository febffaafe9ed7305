"""Training through Lightning: data module, tasks, callbacks, the run folder."""
