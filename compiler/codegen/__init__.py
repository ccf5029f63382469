"""Code generation: a verified integer IR graph to a standalone C project (see project.py)."""

from .memory import MemoryPlan, plan as plan_memory
from .names import Namer, c_ident, model_ident
from .project import generate_project, render_project

__all__ = ["MemoryPlan", "Namer", "c_ident", "generate_project", "model_ident", "plan_memory", "render_project"]
