"""Read the main graph of a ``.tflite`` file (tensor names, shapes, inputs, outputs) and re-point its outputs.

A TFLite model is a flatbuffer (schema ``tflite/schema.fbs``, identifier ``TFL3``). Reading the few fields
needed here takes a page of ``struct`` code and no TensorFlow. :func:`with_outputs` lets an intermediate
tensor, such as BirdNET's embedding just before its logits, be read as a real graph output: the interpreter
then keeps it (no ``experimental_preserve_all_tensors``, which costs memory and time) and XNNPACK still
runs the whole graph.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

IDENTIFIER = b"TFL3"

# Field slots of the schema's tables (tensorflow/lite/schema/schema.fbs).
_MODEL_SUBGRAPHS = 2
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS = 0, 1, 2
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_SHAPE_SIGNATURE = 0, 1, 3, 7

TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
                7: "int16", 8: "complex64", 9: "int8", 10: "float64"}
"""TensorType enum -> numpy dtype name."""


class GraphFormatError(ValueError):
    """The bytes are not a TFLite flatbuffer this reader understands."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main graph; ``-1`` in ``shape_signature`` marks a dimension that can be resized."""

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]


@dataclass(frozen=True)
class GraphInfo:
    """The main (first) subgraph: all its tensors and the indices of its inputs and outputs."""

    tensors: list[TensorInfo]
    inputs: list[int]
    outputs: list[int]

    def by_name(self, name: str) -> TensorInfo | None:
        """The tensor called ``name``, if any."""
        return next((t for t in self.tensors if t.name == name), None)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.data, pos)[0]

    def field(self, table: int, slot: int) -> int | None:
        """Absolute position of a table field, or None when the field is absent."""
        vtable = table - struct.unpack_from("<i", self.data, table)[0]
        vtable_size = struct.unpack_from("<H", self.data, vtable)[0]
        entry = 4 + 2 * slot
        if entry >= vtable_size:
            return None
        offset = struct.unpack_from("<H", self.data, vtable + entry)[0]
        return table + offset if offset else None

    def ref(self, table: int, slot: int) -> int | None:
        """Target of an offset field (table, vector or string)."""
        pos = self.field(table, slot)
        return None if pos is None else pos + self.u32(pos)

    def ints(self, table: int, slot: int) -> tuple[int, ...]:
        vector = self.ref(table, slot)
        if vector is None:
            return ()
        return struct.unpack_from(f"<{self.u32(vector)}i", self.data, vector + 4)

    def tables(self, table: int, slot: int) -> list[int]:
        vector = self.ref(table, slot)
        if vector is None:
            return []
        return [vector + 4 + 4 * i + self.u32(vector + 4 + 4 * i) for i in range(self.u32(vector))]

    def string(self, table: int, slot: int) -> str:
        pos = self.ref(table, slot)
        if pos is None:
            return ""
        return self.data[pos + 4: pos + 4 + self.u32(pos)].decode("utf-8", errors="replace")


def _main_subgraph(data: bytes) -> tuple[_Reader, int]:
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise GraphFormatError("not a TFLite model (no TFL3 identifier)")
    reader = _Reader(data)
    try:
        subgraphs = reader.tables(reader.u32(0), _MODEL_SUBGRAPHS)
    except struct.error:
        raise GraphFormatError("truncated TFLite flatbuffer") from None
    if not subgraphs:
        raise GraphFormatError("TFLite model has no subgraph")
    return reader, subgraphs[0]


def read_graph(data: bytes) -> GraphInfo:
    """Tensors, inputs and outputs of the model's main subgraph."""
    reader, subgraph = _main_subgraph(data)
    try:
        tensors = []
        for index, table in enumerate(reader.tables(subgraph, _SUBGRAPH_TENSORS)):
            type_pos = reader.field(table, _TENSOR_TYPE)
            type_code = 0 if type_pos is None else data[type_pos]
            shape = reader.ints(table, _TENSOR_SHAPE)
            tensors.append(TensorInfo(index, reader.string(table, _TENSOR_NAME), TENSOR_TYPES.get(type_code, "other"),
                                      shape, reader.ints(table, _TENSOR_SHAPE_SIGNATURE) or shape))
        return GraphInfo(tensors, list(reader.ints(subgraph, _SUBGRAPH_INPUTS)),
                         list(reader.ints(subgraph, _SUBGRAPH_OUTPUTS)))
    except (struct.error, IndexError):
        raise GraphFormatError("truncated TFLite flatbuffer") from None


def with_outputs(data: bytes, outputs: list[int]) -> bytes:
    """A copy of the model whose main graph outputs are the tensors ``outputs`` (indices), in that order.

    The new outputs vector is appended at the end of the buffer (4-byte aligned) and the subgraph's
    ``outputs`` field is re-pointed at it: flatbuffer offsets only point forward, so this is valid
    whatever the model's size, and nothing else moves.
    """
    reader, subgraph = _main_subgraph(data)
    field = reader.field(subgraph, _SUBGRAPH_OUTPUTS)
    if field is None:
        raise GraphFormatError("TFLite main graph has no outputs field")
    patched = bytearray(data)
    patched.extend(b"\0" * (-len(patched) % 4))
    vector = len(patched)
    patched.extend(struct.pack(f"<I{len(outputs)}i", len(outputs), *outputs))
    struct.pack_into("<I", patched, field, vector - field)
    return bytes(patched)
