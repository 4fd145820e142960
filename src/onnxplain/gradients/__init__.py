"""White-box references on ``torch.nn.Module``: Saliency, IG, SmoothGrad, AGI, AttEXplore, LA.

Each method is configured in its constructor and called as
``method.explain(model, x, target=None) -> Explanation``, the same result type as the
black-box explainers. ``x`` is one (C,H,W) explicand or a (B,C,H,W) batch, as a numpy array or
a tensor, in the model's explicand space (float32 [0,1] pixels for models made by
``onnxplain.export``). See ``_common`` for the conventions every method shares.
"""

from onnxplain.gradients.agi import AGI
from onnxplain.gradients.attexplore import AttEXplore
from onnxplain.gradients.integrated import IntegratedGradients
from onnxplain.gradients.la import LA
from onnxplain.gradients.saliency import Saliency
from onnxplain.gradients.smoothgrad import SmoothGrad

__all__ = ["AGI", "LA", "AttEXplore", "IntegratedGradients", "Saliency", "SmoothGrad"]
