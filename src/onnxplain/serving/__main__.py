"""``python -m onnxplain.serving MODEL.onnx [--name N] [--host H] [--port P] ...``"""

from onnxplain.serving.server import main

if __name__ == "__main__":
    raise SystemExit(main())
