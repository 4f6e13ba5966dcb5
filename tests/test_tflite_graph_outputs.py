"""The flatbuffer reader sees what the interpreter sees, and re-pointed outputs expose intermediate tensors."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from tflite_fixtures import EMBEDDING, LOGITS, write_tiny_model

from daemon.model.tflite_graph import GraphFormatError, read_graph, with_outputs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tflite") / "tiny.tflite", 4_800, dim=5, n_logits=3)


def test_read_graph_matches_the_interpreter(tiny):
    graph = read_graph(tiny.path.read_bytes())
    interpreter = Interpreter(model_path=str(tiny.path))
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    assert [t.name for t in graph.tensors] == [details[i]["name"] for i in range(len(graph.tensors))]
    for tensor in graph.tensors:
        assert list(tensor.shape_signature) == list(details[tensor.index]["shape_signature"])
        assert tensor.dtype == np.dtype(details[tensor.index]["dtype"]).name
    assert graph.inputs == [d["index"] for d in interpreter.get_input_details()]
    assert graph.outputs == [d["index"] for d in interpreter.get_output_details()] == [graph.by_name(LOGITS).index]
    assert graph.by_name("nope") is None


def test_with_outputs_exposes_an_intermediate_tensor(tiny, rng):
    data = tiny.path.read_bytes()
    graph = read_graph(data)
    embedding, logits = graph.by_name(EMBEDDING).index, graph.by_name(LOGITS).index
    patched = with_outputs(data, [embedding, logits])
    assert read_graph(patched).outputs == [embedding, logits]
    assert [t.name for t in read_graph(patched).tensors] == [t.name for t in graph.tensors]
    interpreter = Interpreter(model_content=patched)
    interpreter.allocate_tensors()
    chunk = rng.standard_normal(4_800).astype(np.float32)
    interpreter.set_tensor(0, chunk[None, :])
    interpreter.invoke()
    outputs = interpreter.get_output_details()
    assert [o["name"] for o in outputs] == [EMBEDDING, LOGITS]
    np.testing.assert_allclose(interpreter.get_tensor(embedding)[0], tiny.embedding(chunk), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(interpreter.get_tensor(logits)[0], tiny.logits(chunk), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("data", [b"", b"garbage!", b"\x08\x00\x00\x00TFL3\xff\xff\xff\x7f"])
def test_not_a_model_is_a_format_error(data):
    with pytest.raises(GraphFormatError):
        read_graph(data)
