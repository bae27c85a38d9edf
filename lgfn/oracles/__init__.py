"""Reward oracles: callables mapping a batch of token sequences to raw rewards."""
