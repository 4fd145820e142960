"""RemoteModel: a model behind a KServe v2 / Open Inference Protocol HTTP endpoint.

Triton, KServe, MLServer and Seldon all speak this protocol; the v2 data plane has no explain
endpoint, so the explanation happens here, on the client, from ``infer`` calls alone. Wire format:
:mod:`onnxplain.serving.protocol` (shared with onnxplain's server); connections, timeouts and
retries (the failure policy): :mod:`onnxplain.models._http`; tensors from options and metadata:
:mod:`onnxplain.models._remote_config`. Not retried, each a specific
:class:`~onnxplain.errors.RemoteModelError` naming the URL: a 4xx (with the server's message) and
a 2xx that is not the protocol (malformed JSON, an output whose shape, rows, element count or
datatype does not fit what was sent). Queries are counted only when their chunk has been answered
with valid scores: a retried request is never counted twice, a failed one not at all.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Literal

import numpy as np

from onnxplain.errors import InvalidInputError, RemoteModelError
from onnxplain.models._http import HttpTransport, RemoteTimeoutError, remote_error
from onnxplain.models._remote_config import (
    check_arguments,
    check_remote_options,
    needs_metadata,
    resolve_tensors,
    supply,
)
from onnxplain.models.base import (
    DEFAULT_BATCH_SIZE,
    BaseQueryModel,
    Normalize,
    OutputHead,
    check_adapter_arguments,
)
from onnxplain.serving.protocol import (
    BINARY_EXTENSION,
    BINARY_HEADER,
    CONFIG,
    INFER,
    SERVER_PATH,
    MalformedJSON,
    ProtocolError,
    decode_scores,
    encode_infer_request,
    error_text,
    model_path,
    parse_v2_url,
)

__all__ = [
    "PROBABILITY_TOLERANCE",
    "RemoteModel",
    "RemoteTimeoutError",
    "check_remote_options",
    "looks_like_probabilities",
    "parse_v2_url",
]

PROBABILITY_TOLERANCE = 1e-3
"""``ends_in_softmax=None``: the first answer is taken as probabilities when every row is
non-negative and sums to 1 within this tolerance (float32 softmax rows of 1000 classes sum to 1
within ~1e-6; logits pass this test only by accident)."""


class RemoteModel(BaseQueryModel):
    """A QueryModel that forwards every chunk to a KServe v2 ``infer`` endpoint.

    Args:
        url: server base URL, e.g. ``"http://127.0.0.1:8000"`` (a path prefix before ``/v2`` is
            kept, for servers behind an ingress). See :meth:`from_url` for a full model URL.
        model_name: the model's name on the server.
        version: optional model version.
        input_name / output_name: which tensor to feed / read; read from the metadata when it
            lists exactly one.
        input_shape: one sample's shape in the explicand space (C,H,W); read from the metadata
            when every non-batch axis is static there.
        num_classes: read from the output's last axis when static.
            With all four of these given, the server need not publish metadata at all; a field
            missing from both is an error naming the option that supplies it. The input
            datatype is the metadata's, else FP32 (a server that refuses it says so on the first
            request, and the error says FP32 was assumed).
        output: output head, as :class:`~onnxplain.models.base.BaseQueryModel`.
        ends_in_softmax: ``True``/``False`` declares whether the served model outputs
            probabilities; ``None`` (default) decides from the first answer (rows non-negative and
            summing to 1 within :data:`PROBABILITY_TOLERANCE` -> probabilities), records it in
            ``ends_in_softmax`` and :meth:`describe`, and says so in a ``UserWarning``.
            Probabilities are taken as they are by ``output="probs"`` and as their log by
            ``"logits"``.
        layout: ``"NCHW"`` or ``"NHWC"``: the server's tensor layout; explicands stay CHW.
        max_batch_size: largest batch the server accepts; ``None`` reads it from the metadata
            (``max_batch_size`` field, Triton's ``/config``, or a static leading axis).
        batch_size: samples per request (capped by ``max_batch_size``); default the server's
            limit, else 256.
        timeout: seconds one socket operation may wait before the attempt counts as timed out.
        retries: extra attempts after a connection error, timeout, 5xx or 429.
        backoff / backoff_max: exponential backoff base and cap, in seconds.
        max_queries: optional budget of samples (raises before anything is sent).
        concurrency: requests in flight at once when one call spans several chunks; explainers
            see ``best_batch_size() = batch_size · concurrency`` so their calls do span them.
        binary: ``"auto"`` (use the binary tensor extension when the server lists it), ``True``
            or ``False``.
        preprocess: optional :class:`~onnxplain.models.base.Normalize` applied before sending.
        channel_order: ``"RGB"`` or ``"BGR"`` (the served model's channel order; explicands stay RGB).
        headers: extra HTTP headers (e.g. an ``Authorization`` token) sent with every request.
    """

    uses_host_cpu = False  # the server computes; this process only sends and waits
    ends_in_softmax: bool | None  # type: ignore[assignment]  # None until the first answer decides

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        version: str | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        output: OutputHead = "probs",
        ends_in_softmax: bool | None = None,
        layout: Literal["NCHW", "NHWC"] = "NCHW",
        max_batch_size: int | None = None,
        batch_size: int | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        backoff_max: float = 5.0,
        max_queries: int | None = None,
        concurrency: int = 4,
        binary: bool | Literal["auto"] = "auto",
        preprocess: Normalize | None = None,
        channel_order: Literal["RGB", "BGR"] = "RGB",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        check_arguments(
            url, model_name, layout, timeout, retries, backoff, backoff_max, concurrency, max_batch_size, binary,
            batch_size, ends_in_softmax, headers,
        )  # fmt: skip
        check_adapter_arguments(
            input_shape=input_shape, num_classes=num_classes, output=output, max_queries=max_queries,
            preprocess=preprocess, channel_order=channel_order,
        )  # fmt: skip
        self._http = HttpTransport(
            url, timeout=timeout, retries=retries, backoff=backoff, backoff_max=backoff_max, headers=headers
        )
        self.base_url = self._http.base_url
        self.model_name, self.version, self.layout, self.concurrency = model_name, version, layout, concurrency
        self._model_path = model_path(model_name, version)
        self.model_url = self.base_url + self._model_path
        self.infer_url = self.model_url + INFER
        self._pool: ThreadPoolExecutor | None = None
        self._answered = False
        given = {"input_name": input_name, "output_name": output_name, "input_shape": input_shape}
        self.metadata = self._read_metadata(needs_metadata(**given, num_classes=num_classes))
        self.tensors = resolve_tensors(
            self.metadata, self.model_url, **given, num_classes=num_classes, layout=layout
        )
        self.input_name, self.output_name = self.tensors.input_name, self.tensors.output_name
        self.input_datatype = self.tensors.datatype
        self.output_datatype: str | None = None  # seen on the first answer
        limit = max_batch_size or self._discover_max_batch()
        self.max_batch_size = limit
        self.binary = self._server_has_binary() if binary == "auto" else bool(binary)
        chunk = batch_size or limit or DEFAULT_BATCH_SIZE
        super().__init__(
            self.tensors.sample_shape,
            self.tensors.num_classes,
            output=output,
            batch_size=min(chunk, limit) if limit is not None else chunk,
            max_queries=max_queries,
            preprocess=preprocess,
            channel_order=channel_order,
            head=None if ends_in_softmax is None else ("softmax" if ends_in_softmax else "logits"),
        )
        self.source = self.model_url
        self.head_source: str | None = None if ends_in_softmax is None else "declared"

    @property  # type: ignore[override]
    def ends_in_softmax(self) -> bool | None:
        """Whether the served model outputs probabilities: declared, decided from the first
        answer, or ``None`` until then."""
        return None if self.head_source is None else self.head == "softmax"

    @ends_in_softmax.setter
    def ends_in_softmax(self, value: bool | None) -> None:
        if value is None:
            self.head, self.head_source = "logits", None
        else:
            self.head, self.head_source = ("softmax" if value else "logits"), "declared"

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RemoteModel:
        """Build from a full model URL ``http://host:port/v2/models/NAME[/versions/V]``."""
        base, name, version = parse_v2_url(url)
        if version is not None and kwargs.get("version") not in (None, version):
            raise InvalidInputError(f"the URL names version {version!r} but version={kwargs['version']!r}.")
        kwargs.setdefault("version", version)
        return cls(base, name, **kwargs)

    def __repr__(self) -> str:
        return (
            f"RemoteModel({self.model_url!r}, input={self.input_name!r}{list(self.tensors.wire_shape)}, "
            f"output={self.output_name!r}, batch_size={self.batch_size}, binary={self.binary})"
        )

    def describe(self) -> dict[str, Any]:
        """The base description (where the base has one) plus the endpoint, the tensors and the
        head decision (``ends_in_softmax`` and whether it was ``"declared"`` or decided from the
        ``"first answer"``; ``None`` before the first call)."""
        parent = getattr(super(), "describe", None)
        info: dict[str, Any] = dict(parent()) if callable(parent) else {}
        info.update(
            kind="remote",
            url=self.model_url,
            input_name=self.input_name,
            output_name=self.output_name,
            input_datatype=self.input_datatype,
            layout=self.layout,
            binary=self.binary,
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            ends_in_softmax=self.ends_in_softmax,
            ends_in_softmax_source=self.head_source,
        )
        return info

    # -- metadata -------------------------------------------------------------------------------
    def _read_metadata(self, missing: list[str]) -> dict[str, Any] | None:
        """The model metadata; ``None`` when the server has none (4xx) and nothing is ``missing``."""
        try:
            return self._http.get_json(self._model_path, what="model metadata")
        except RemoteModelError as exc:
            status = getattr(exc, "status", None)
            if status is None or status >= 500 or status == 200:
                raise
            if missing:
                hint = "; ".join(supply(name) for name in missing)
                raise remote_error(
                    f"{exc} If the server publishes no model metadata, {hint}.",
                    getattr(exc, "url", self.model_url),
                    status,
                ) from None
            return None

    def _discover_max_batch(self) -> int | None:
        meta = self.metadata or {}
        limit = meta.get("max_batch_size")
        if isinstance(limit, int) and limit > 0:
            return limit
        try:
            config = self._http.get_json(self._model_path + CONFIG, what="model config")
        except RemoteModelError as exc:
            if getattr(exc, "status", None) is None:
                raise  # the server went away: that is not "no config endpoint"
            config = {}
        value = config.get("max_batch_size") if isinstance(config, dict) else None
        if isinstance(value, int) and value > 0:
            return value
        return self.tensors.batch_dim if self.tensors.batch_dim > 0 else None

    def _server_has_binary(self) -> bool:
        try:
            server = self._http.get_json(SERVER_PATH, what="server metadata")
        except RemoteModelError as exc:
            if getattr(exc, "status", None) is None:
                raise
            return False
        extensions = server.get("extensions", []) if isinstance(server, dict) else []
        return isinstance(extensions, list) and BINARY_EXTENSION in extensions

    # -- transport ------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pool"] = None
        return state

    def close(self) -> None:
        """Close the keep-alive connections and the request thread pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._http.close()

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one chunk ------------------------------------------------------------------------------
    def _forward(self, chunk: np.ndarray) -> np.ndarray:
        n, fixed = len(chunk), self.tensors.batch_dim
        if fixed > 0 and n < fixed:
            # a server with a static batch axis needs full batches: repeat the last sample
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        wire = chunk.transpose(0, 2, 3, 1) if self.layout == "NHWC" and chunk.ndim == 4 else chunk
        body, headers = encode_infer_request(
            wire, input_name=self.input_name, datatype=self.input_datatype, output_name=self.output_name,
            binary=self.binary,
        )  # fmt: skip
        response = self._http.request("POST", self._model_path + INFER, body, headers)
        if response.status != 200:
            assumed = ""
            if not self._answered and not self.tensors.datatype_declared and 400 <= response.status < 500:
                assumed = f" (the input was sent as {self.input_datatype}: the metadata names no datatype)"
            raise remote_error(
                f"POST {self.infer_url} answered HTTP {response.status}: {error_text(response.body)}{assumed}.",
                self.infer_url,
                response.status,
            )
        scores = self._decode(response.body, response.headers.get(BINARY_HEADER.lower()), len(chunk))
        self._answered = True
        return scores[:n]

    def _decode(self, body: bytes, header_length: str | None, sent: int) -> np.ndarray:
        """The answer's scores as (sent, num_classes) float32; every mismatch is a specific error."""
        url = self.infer_url
        try:
            scores, self.output_datatype = decode_scores(
                body, header_length, self.output_name, sent=sent, classes=self.num_classes
            )
        except MalformedJSON as exc:
            raise remote_error(f"POST {url} returned malformed JSON ({exc}).", url, 200) from exc
        except ProtocolError as exc:
            raise remote_error(f"POST {url}: {exc}.", url, 200) from exc
        return scores

    def check_scores(self, raw: Any, rows: int, start: int, source: str | None = None) -> np.ndarray:
        return super().check_scores(raw, rows, start, source or self.model_url)

    # -- the door -------------------------------------------------------------------------------
    def best_batch_size(self) -> int:
        """``batch_size · concurrency``: a call of this size keeps ``concurrency`` requests in flight."""
        return self._chunk_size() * self.concurrency

    def check_input(self, batch: Any) -> np.ndarray:
        """Host (numpy) arrays only: a device tensor is refused with one sentence."""
        if not isinstance(batch, np.ndarray):
            try:
                batch = np.asarray(batch, dtype=np.float32)
            except (TypeError, RuntimeError) as exc:
                raise InvalidInputError(f"RemoteModel takes host (numpy) arrays; {exc}") from exc
        return super().check_input(batch)

    def _forward_chunks(self, chunks: list[tuple[int, Any]]) -> list[np.ndarray]:
        """Chunks go out ``concurrency`` at a time and come back in order.

        ``n_queries``/``n_calls`` grow only by chunks answered with valid scores (also when another
        chunk of the same call fails); ``model_seconds`` is the wall time spent waiting for the
        server, so overlapping requests are not summed. The first call answered decides the head
        when ``ends_in_softmax`` is ``None``.
        """
        results: list[np.ndarray | None] = [None] * len(chunks)
        t0 = time.perf_counter()
        try:
            error = self._collect(chunks, results)
        finally:
            self.model_seconds += time.perf_counter() - t0
            for scores in results:
                if scores is not None:
                    self._count_chunk(len(scores))
        if error is not None:
            raise error
        answered = [r for r in results if r is not None]
        if self.head_source is None:
            self._decide_head(np.concatenate(answered, axis=0))
        return answered

    def _collect(self, chunks: list[tuple[int, Any]], results: list[np.ndarray | None]) -> BaseException | None:
        """Fill ``results`` with each chunk's scores; return the first error (later chunks not sent)."""
        if self.concurrency == 1 or len(chunks) == 1:
            for i, (start, chunk) in enumerate(chunks):
                try:
                    results[i] = self._score_chunk(start, chunk)[0]
                except Exception as exc:
                    return exc
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="onnxplain-remote")
        futures: list[Future[tuple[np.ndarray, float]]] = [
            self._pool.submit(self._score_chunk, start, chunk) for start, chunk in chunks
        ]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()  # not started yet: never sent
        wait([f for f in pending if not f.cancelled()])
        first: BaseException | None = None
        for i, f in enumerate(futures):
            if f.cancelled():
                continue
            exc = f.exception()
            if exc is None:
                results[i] = f.result()[0]
            elif first is None:
                first = exc
        return first

    def _decide_head(self, scores: np.ndarray) -> None:
        """Set ``ends_in_softmax`` from the first answer (:func:`looks_like_probabilities`) and say
        what was decided (unless ``output="raw"``, which the decision does not touch)."""
        probs = looks_like_probabilities(scores)
        self.head, self.head_source = ("softmax" if probs else "logits"), "first answer"
        if self.output == "raw":
            return
        what = (
            "probabilities (every row non-negative, summing to 1): ends_in_softmax=True"
            if probs
            else "logits (not every row is a probability vector): ends_in_softmax=False"
        )
        warnings.warn(
            f"{self.model_url} answers with {what}; pass ends_in_softmax= to declare it.", UserWarning, stacklevel=2
        )


def looks_like_probabilities(scores: np.ndarray, tol: float = PROBABILITY_TOLERANCE) -> bool:
    """Whether every row of ``scores`` (N, C) is non-negative and sums to 1 within ``tol`` (in float64)."""
    rows = np.asarray(scores, dtype=np.float64)
    return bool((rows >= 0).all() and (np.abs(rows.sum(axis=1) - 1.0) <= tol).all())
