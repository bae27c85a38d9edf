"""Imports every module that registers built-in components, so the registry knows them."""

import lgfn.data.replay  # noqa: F401
import lgfn.losses  # noqa: F401
import lgfn.samplers  # noqa: F401
import lgfn.tasks  # noqa: F401
import lgfn.oracles.qm9  # noqa: F401
import lgfn.oracles.rna  # noqa: F401
import lgfn.oracles.seh  # noqa: F401
import lgfn.oracles.tfbind8  # noqa: F401
