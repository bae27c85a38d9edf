"""Training: the Lightning data modules of Algorithm 1, replay buffers, and the callbacks every run gets."""
