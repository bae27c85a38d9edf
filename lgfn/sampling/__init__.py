"""Drawing trajectories: forward with P_F (ε-exploration) and backward with P_B, as batched tensors."""
