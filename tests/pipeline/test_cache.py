"""The one result cache: what is reused, what is recomputed, and the commit order."""

from __future__ import annotations

import json

import numpy as np

from onnxplain.pipeline.cache import JsonIndex, ResultCache, RowIndex, array_digest, settings_key


def _index(path):
    return JsonIndex(path, lambda doc: doc["records"] if isinstance(doc, dict) else [],
                     lambda current, earlier: {"records": current + earlier})


def _record(item="a", method="geex", key="k1", files=None, **extra):
    return {"id": item, "method": method, "settings_key": key, "files": files or {"npy": f"{item}.npy"}, **extra}


def test_settings_key_is_stable_and_sensitive():
    fields = {"model": "abc", "params": {"n_queries": 64, "seed": 0}, "target": 3}
    assert settings_key(fields) == settings_key(dict(reversed(list(fields.items()))))  # key order is irrelevant
    assert len(settings_key(fields)) == 16
    assert settings_key({**fields, "target": 4}) != settings_key(fields)
    assert settings_key({**fields, "params": {"n_queries": 64, "seed": 1}}) != settings_key(fields)
    x = np.zeros((1, 2, 2), np.float32)
    assert array_digest(x) != array_digest(x + 1e-7) and array_digest(x) != array_digest(x.astype(np.float64))


def test_lookup_rules(tmp_path):
    index = _index(tmp_path / "index.json")
    cache = ResultCache(tmp_path, index)
    (tmp_path / "a.npy").write_bytes(b"x")
    cache.commit(_record())
    assert cache.lookup("a", "geex", "k1") is not None
    assert cache.lookup("a", "geex", "k2") is None  # other settings
    assert cache.lookup("a", "rise", "k1") is None and cache.lookup("b", "geex", "k1") is None
    assert ResultCache(tmp_path, index, force=True).lookup("a", "geex", "k1") is None  # --force
    (tmp_path / "a.npy").unlink()
    assert cache.lookup("a", "geex", "k1") is None  # a record whose file is gone
    (tmp_path / "a.npy").write_bytes(b"x")
    cache.commit(_record(status="error"))
    assert cache.lookup("a", "geex", "k1") is None  # a failed item is retried


def test_json_index_persists_every_commit_and_keeps_earlier_records(tmp_path):
    path = tmp_path / "index.json"
    index = _index(path)
    index.put(_record("a"))
    assert [r["id"] for r in json.loads(path.read_text())["records"]] == ["a"]  # written at once
    index.put(_record("b"))
    again = _index(path)  # a new run: both are previous records
    assert again.get("a", "geex")["id"] == "a" and not again.current
    again.keep(_record("b", label="dog"))  # reused in this run, with updated fields
    again.put(_record("c"))
    doc = json.loads(path.read_text())
    assert [r["id"] for r in doc["records"]] == ["b", "c", "a"]  # this run's first, then the earlier ones
    assert doc["records"][0]["label"] == "dog"
    # records without the cache's fields (an older file) are ignored, not trusted
    path.write_text(json.dumps({"records": [{"image": "x", "method": "geex"}]}))
    assert _index(path).previous == {}


def test_row_index_one_file_per_item(tmp_path):
    index = RowIndex(tmp_path / "rows", lambda i: i.replace("/", "%2F"))
    cache = ResultCache(tmp_path, index)
    (tmp_path / "m.npz").write_bytes(b"x")
    cache.commit(_record("a/b", files={"npz": "m.npz"}))
    assert (tmp_path / "rows" / "a%2Fb.json").is_file()
    assert cache.lookup("a/b", None, "k1")["id"] == "a/b"  # method None: a store of one method
    assert cache.lookup("a/b", "rise", "k1") is None
