"""Networks: the policy α_θ, the β conditioners (incl. the logit-scaling net f_θ), Z_θ(β) and F(s, β)."""

from lgfn.models.conditioners import Conditioner
from lgfn.models.policy import Policy

__all__ = ["Conditioner", "Policy"]
