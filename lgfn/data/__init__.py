"""Training data: trajectories, sampling, replay buffers and the Lightning data modules (Algorithm 1)."""
