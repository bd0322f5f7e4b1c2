"""Graph passes on an exported ONNX model: Keras' layer normalization as one ``LayerNormalization`` node, and a
Dense layer on a sequence as one ``MatMul``.

tf2onnx writes each Keras ``LayerNormalization`` as the thirteen small ops TensorFlow ran (two means as
``GlobalAveragePool``, a squared difference, ``Sqrt``, ``Reciprocal``, four ``Mul``, ``Neg``, ``Add``\\ s), and
ONNX Runtime's own layer-norm fusion does not recognise that form. One sample through a small model is bound by
the number of nodes, not arithmetic, so :func:`fuse_layer_norms` rewrites each of them as the standard
``LayerNormalization`` operator (ONNX opset 17), which ONNX Runtime runs as one kernel. The parity check of the
export then compares the rewritten graph with Keras.

The pattern, for ``x`` of rank 3 normalised over its last axis (Keras 3's ``moments`` form)::

    mean = GlobalAveragePool(x)            var = GlobalAveragePool(Mul(d, d)), d = Sub(x, mean)
    inv  = Mul(Reciprocal(Sqrt(Add(var, eps))), gamma)      (no gamma: inv is the Reciprocal itself)
    out  = Add(Mul(x, inv), Add(Mul(Neg(mean), inv), beta)) (no beta: the inner Add is absent)

A ``Dense`` layer on a ``(batch, time, width)`` input is exported from TensorFlow's ``Tensordot`` as eight nodes:
flatten to ``(-1, width)``, ``MatMul``, and a reshape back whose shape is computed at run time from the input's
(``Shape``, ``Cast``, ``Gather``, ``Concat``, ``Cast``). ONNX's ``MatMul`` broadcasts over leading axes, so
:func:`fold_tensordot_reshapes` writes it as one ``MatMul`` of the input.

Example:
    >>> LAYER_NORM_OPSET
    17
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

LAYER_NORM_OPSET = 17
"""The first ONNX opset with ``LayerNormalization``; graphs are exported at it."""
_MEAN_OPS = ("GlobalAveragePool", "ReduceMean")


def fuse_layer_norms(model: Any) -> int:
    """Rewrites every Keras layer normalization of ``model`` (an ``onnx.ModelProto``, changed in place) as one
    ``LayerNormalization`` node; returns how many. Nodes that other parts of the graph still read are kept.

    Raises:
        ValueError: the model's opset is below :data:`LAYER_NORM_OPSET`.
    """
    import onnx
    from onnx import helper, numpy_helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < LAYER_NORM_OPSET:
        raise ValueError(f"LayerNormalization needs ONNX opset >= {LAYER_NORM_OPSET}. Received: opset {opset}")
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in _names_read(node):  # a node reading a tensor twice (Mul(d, d)) is one reader
            readers[name].append(node)
    constants = {init.name: init for init in graph.initializer}
    inferred = onnx.shape_inference.infer_shapes(model).graph
    ranks = {info.name: len(info.type.tensor_type.shape.dim) for info in
             [*inferred.value_info, *inferred.input, *inferred.output] if info.type.tensor_type.HasField("shape")}

    def constant(name: str) -> np.ndarray | None:
        if name in constants:
            return numpy_helper.to_array(constants[name])
        node = producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def only(name: str, op_type: str):
        """The single node reading ``name``, when it is an ``op_type``."""
        found = readers.get(name, [])
        return found[0] if len(found) == 1 and found[0].op_type == op_type else None

    fused, replaced = 0, {}
    for mean in [n for n in graph.node if n.op_type in _MEAN_OPS]:
        rank = ranks.get(mean.input[0])
        # GlobalAveragePool averages every axis after the second: the last one alone only at rank 3
        if rank is None or (mean.op_type == "GlobalAveragePool" and rank != 3):
            continue
        if mean.op_type == "ReduceMean" and not _last_axis_mean(mean, rank, constant):
            continue
        match = _match(mean, readers, constant, only)
        if match is None:
            continue
        x, eps, gamma, beta, out_node, removed = match
        width = gamma.size if gamma is not None else (beta.size if beta is not None else None)
        if width is None:
            continue  # no weights to say the normalised width: left as it is
        names = [f"{out_node.name}_ln_gamma", f"{out_node.name}_ln_beta"]
        for name, values, default in zip(names, (gamma, beta), (1.0, 0.0), strict=True):
            array = np.full(width, default, np.float32) if values is None else values.reshape(-1).astype(np.float32)
            graph.initializer.append(numpy_helper.from_array(array, name))
        node = helper.make_node("LayerNormalization", [x, *names], list(out_node.output), name=f"{out_node.name}_ln",
                                axis=-1, epsilon=float(eps))
        replaced[id(out_node)] = node
        for old in removed:
            replaced.setdefault(id(old), None)
        fused += 1
    if fused:
        kept = []
        for node in graph.node:
            if id(node) not in replaced:
                kept.append(node)
            elif replaced[id(node)] is not None:
                kept.append(replaced[id(node)])
        del graph.node[:]
        graph.node.extend(kept)
        onnx.checker.check_model(model)
    return fused


def _match(mean, readers, constant, only):
    """``(x, eps, gamma, beta, output node, nodes to remove)`` of the layer norm whose first mean is ``mean``."""
    x = mean.input[0]
    after_mean = {n.op_type: n for n in readers.get(mean.output[0], [])}
    neg, sub = after_mean.get("Neg"), after_mean.get("Sub")
    if len(readers.get(mean.output[0], [])) != 2 or neg is None or sub is None or list(sub.input) != [x, mean.output[0]]:
        return None
    square = only(sub.output[0], "Mul")
    if square is None or list(square.input) != [sub.output[0]] * 2:
        return None
    variance = only(square.output[0], mean.op_type)
    add_eps = variance and only(variance.output[0], "Add")
    eps = add_eps and constant(next(i for i in add_eps.input if i != variance.output[0]))
    sqrt = add_eps and only(add_eps.output[0], "Sqrt")
    reciprocal = sqrt and only(sqrt.output[0], "Reciprocal")
    if reciprocal is None or eps is None or np.size(eps) != 1:
        return None
    removed = [mean, neg, sub, square, variance, add_eps, sqrt, reciprocal]
    inv, gamma = reciprocal, None
    scaled = readers.get(reciprocal.output[0], [])
    if len(scaled) == 1 and scaled[0].op_type == "Mul" and constant(_other(scaled[0], reciprocal.output[0])) is not None:
        inv = scaled[0]
        gamma = constant(_other(inv, reciprocal.output[0]))
        removed.append(inv)
    uses = readers.get(inv.output[0], [])
    x_scaled = next((n for n in uses if n.op_type == "Mul" and _other(n, inv.output[0]) == x), None)
    mean_scaled = next((n for n in uses if n.op_type == "Mul" and _other(n, inv.output[0]) == neg.output[0]), None)
    if len(uses) != 2 or x_scaled is None or mean_scaled is None or len(readers.get(neg.output[0], [])) != 1:
        return None
    removed += [x_scaled, mean_scaled]
    shift, beta = mean_scaled, None
    after_shift = only(mean_scaled.output[0], "Add")
    if after_shift is not None and constant(_other(after_shift, mean_scaled.output[0])) is not None:
        beta = constant(_other(after_shift, mean_scaled.output[0]))
        shift = after_shift
        removed.append(after_shift)
    out_node = only(x_scaled.output[0], "Add")
    if out_node is None or _other(out_node, x_scaled.output[0]) != shift.output[0] \
            or len(readers.get(shift.output[0], [])) != 1:
        return None
    if any(len(p.output) != 1 for p in removed):
        return None
    return x, float(np.asarray(eps).reshape(-1)[0]), gamma, beta, out_node, removed


def _other(node, name: str) -> str:
    """The input of a two-input ``node`` that is not ``name``."""
    inputs = list(node.input)
    return inputs[1] if inputs[0] == name else inputs[0]


def _last_axis_mean(node, rank: int, constant) -> bool:
    """Whether a ``ReduceMean`` averages the last axis only, keeping it (attribute or input axes)."""
    keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    axes = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
    if axes is None and len(node.input) > 1:
        values = constant(node.input[1])
        axes = None if values is None else list(np.asarray(values).reshape(-1))
    return bool(keepdims) and axes is not None and len(axes) == 1 and axes[0] in (-1, rank - 1)


def fold_tensordot_reshapes(model: Any) -> int:
    """Rewrites every ``Reshape(MatMul(Reshape(x, [-1, k]), W), shape of x[:-1] + [n])`` of ``model`` (changed in
    place) as ``MatMul(x, W)`` and drops the shape computations no longer read; returns how many."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}

    def through_casts(name: str):
        node = producer.get(name)
        while node is not None and node.op_type == "Cast":
            node = producer.get(node.input[0])
        return node

    replaced = {}
    for outer in graph.node:
        matmul = producer.get(outer.input[0]) if outer.op_type == "Reshape" else None
        inner = producer.get(matmul.input[0]) if matmul is not None and matmul.op_type == "MatMul" else None
        weights = constants.get(matmul.input[1]) if inner is not None else None
        if inner is None or inner.op_type != "Reshape" or weights is None or weights.ndim != 2:
            continue
        x, flat = inner.input[0], constants.get(inner.input[1])
        if flat is None or flat.reshape(-1).tolist() != [-1, weights.shape[0]]:
            continue
        concat = through_casts(outer.input[1])
        if concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
            continue
        leading, last = through_casts(concat.input[0]), constants.get(concat.input[1])
        shape = through_casts(leading.input[0]) if leading is not None and leading.op_type == "Gather" else None
        if shape is None or shape.op_type != "Shape" or shape.input[0] != x or last is None \
                or last.reshape(-1).tolist() != [weights.shape[1]]:
            continue
        replaced[id(outer)] = helper.make_node("MatMul", [x, matmul.input[1]], list(outer.output),
                                               name=f"{matmul.name}_folded")
    if replaced:
        nodes = [replaced.get(id(node), node) for node in graph.node]
        del graph.node[:]
        graph.node.extend(_without_dead_nodes(nodes, {out.name for out in graph.output}))
        onnx.checker.check_model(model)
    return len(replaced)


def drop_unused_initializers(model: Any) -> int:
    """Removes the weights and constants of ``model`` (changed in place) that no node reads any more (the passes
    above leave the ones of the nodes they replaced; ONNX Runtime would warn about each when a session loads the
    file); returns how many.

    Example:
        >>> from onnx import helper, numpy_helper
        >>> graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
        ...     [helper.make_tensor_value_info("x", 1, [1])], [helper.make_tensor_value_info("y", 1, [1])],
        ...     [numpy_helper.from_array(np.zeros(1, np.float32), "unused")])
        >>> model = helper.make_model(graph)  # holds a copy of the graph
        >>> drop_unused_initializers(model), len(model.graph.initializer)
        (1, 0)
    """
    graph = model.graph
    read = {name for node in graph.node for name in _names_read(node)} | {out.name for out in graph.output}
    kept = [init for init in graph.initializer if init.name in read]
    dropped = len(graph.initializer) - len(kept)
    if dropped:
        del graph.initializer[:]
        graph.initializer.extend(kept)
    return dropped


def _without_dead_nodes(nodes: list, outputs: set[str]) -> list:
    """``nodes`` less those whose outputs nothing reads (repeated: their inputs' producers may die too); a name
    read inside a subgraph (a ``Loop``'s body reads the outer scope by name) counts as read."""
    while True:
        read = {name for node in nodes for name in _names_read(node)} | outputs
        alive = [node for node in nodes if any(out in read for out in node.output)]
        if len(alive) == len(nodes):
            return alive
        nodes = alive


def _names_read(node) -> set[str]:
    """Every tensor name ``node`` reads, its subgraphs' (``Loop``, ``If``, ``Scan`` bodies) included."""
    names = set(node.input)
    for attribute in node.attribute:
        for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
            for inner in subgraph.node:
                names |= _names_read(inner)
    return names
