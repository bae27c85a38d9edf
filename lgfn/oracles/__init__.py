"""Reward oracles: callables mapping a batch of objects (token rows by default, or their strings or SMILES) to
one raw reward each; :mod:`lgfn.oracles.base` is how a task calls them."""
