"""Pictures of graphs: annotated forward/backward diagrams (`draw`) and step-by-step backprop
frames (`steps`), rendered with whatever Graphviz is at hand (see `backend`)."""
from gradviz.render.diagram import Diagram, draw
from gradviz.render.steps import steps

__all__ = ["Diagram", "draw", "steps"]
