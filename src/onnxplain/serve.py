"""Alias kept for ``python -m onnxplain.serve`` (documented before the server moved): the server
lives in :mod:`onnxplain.serving`."""

from onnxplain.serving.server import V2Handler, V2Server, main

__all__ = ["V2Handler", "V2Server", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
