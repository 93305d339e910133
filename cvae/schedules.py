"""The KL-annealing and teacher-forcing schedules (their code: cvae.core.schedules),
kept at the name the results contract documents."""
from cvae.core.schedules import describe_kl, kl_beta, teacher_forcing_ratio

__all__ = ["describe_kl", "kl_beta", "teacher_forcing_ratio"]
