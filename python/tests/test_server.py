"""`bert4rs serve` seen from Python clients: text-embeddings-inference's client
(`huggingface_hub.InferenceClient.feature_extraction`) and plain HTTP get the vectors the
package's own `encode` gives."""

import json
import re
import subprocess
import urllib.request

import numpy as np
import pytest

import bert4rs
from conftest import _binary


@pytest.fixture(scope="module")
def server(minilm):
    proc = subprocess.Popen([_binary(), "serve", "--model", minilm, "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    url = None
    for line in proc.stderr:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        pytest.fail("bert4rs serve did not start")
    yield url
    proc.terminate()
    assert proc.wait(timeout=30) == 0, "graceful shutdown on SIGTERM exits 0"


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


TEXTS = ["A man is eating food.", "The girl is carrying a baby.", "bert4rs serves TEI's API"]


def test_tei_client_gets_the_package_s_vectors(server, minilm):
    hub = pytest.importorskip("huggingface_hub")
    client = hub.InferenceClient(model=server)
    ours = bert4rs.SentenceEncoder(minilm).encode(TEXTS, normalize_embeddings=True)
    for text, want in zip(TEXTS, ours):
        got = np.asarray(client.feature_extraction(text), dtype=np.float32).reshape(-1)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-5


def test_plain_http_embed_and_errors(server, minilm):
    status, rows = post(server + "/embed", {"inputs": TEXTS, "normalize": False})
    assert status == 200
    ours = bert4rs.SentenceEncoder(minilm).encode(TEXTS, normalize_embeddings=False)
    assert np.abs(np.asarray(rows, dtype=np.float32) - ours).max() < 1e-5
    status, err = post(server + "/embed", {"inputs": [None]})
    assert status == 422 and err["error_type"] == "validation"
