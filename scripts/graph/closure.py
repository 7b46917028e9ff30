"""A kept-in-fp32 set, closed over the nodes that move or cast its values (kept_closure): what every
reduced-precision mechanism keeps, so that keeping every node computes exactly the fp32 graph."""

from graph import FLOAT_TYPES, MOVES, load_graph, tensor_types, topological_order


def kept_closure(model, keep) -> list[str]:
    """The nodes a kept set needs beside its own for its values to stay fp32 all the way (names, in graph
    order, none of `keep`): every node that only moves or casts (MOVES) a kept node's output on its way to
    another kept node or to a graph output, and every node that carries a constant (an initializer, a
    Constant) into a kept node or into one of those. Without them a kept LayerNorm hands its output to a
    Cast that is stored in fp16 on the way to a kept MatMul, and a kept MatMul's weight reaches it through
    a Transpose converted to fp16: every reduced-precision mechanism (each plan's build_reduced: the fp16
    converter, the fp16-storage proxy, a device compiler's kept-operator list, the quantisers' exclusions)
    takes the kept set with this closure, so keeping every node computes exactly the fp32 graph. `model`: an onnx
    ModelProto or a path (read without its weights)."""
    if not hasattr(model, "graph"):
        model = load_graph(model)
    g = model.graph
    nodes = topological_order(list(g.node))
    keep = set(keep)
    kept = {i for i, n in enumerate(nodes) if n.name in keep}
    types = tensor_types(model)
    outputs = {o.name for o in g.output}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for x in n.input:
            if x:
                consumers.setdefault(x, []).append(i)
    constant = {t.name for t in g.initializer}  # values computed from constants only
    constant_nodes = set()
    for i, n in enumerate(nodes):
        if all(x in constant for x in n.input if x):
            constant_nodes.add(i)
            constant.update(o for o in n.output if o)

    def floating(i: int) -> bool:
        return any(types.get(o, 1) in FLOAT_TYPES for o in nodes[i].output if o)

    def moves(i: int) -> bool:
        return nodes[i].op_type in MOVES and i not in constant_nodes and floating(i)

    # movement nodes from which a kept node or a graph output is reached through movement nodes only
    leads: set[int] = set()
    for i in reversed(range(len(nodes))):
        if moves(i) and any(o in outputs or any(c in kept or c in leads for c in consumers.get(o, []))
                            for o in nodes[i].output if o):
            leads.add(i)
    added: set[int] = set()
    stack = [c for i in kept for o in nodes[i].output if o for c in consumers.get(o, [])]
    while stack:
        c = stack.pop()
        if c in kept or c in added or c not in leads:
            continue
        added.add(c)
        stack.extend(u for o in nodes[c].output if o for u in consumers.get(o, []))
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    stack = [producer[x] for i in kept | added for x in nodes[i].input if x in producer]
    while stack:
        p = stack.pop()
        if p in kept or p in added or p not in constant_nodes or not floating(p):
            continue
        added.add(p)
        stack.extend(producer[x] for x in nodes[p].input if x in producer)
    return [nodes[i].name for i in sorted(added)]


def closed(model, keep) -> list[str]:
    """`keep` (its order, each once) and then its kept_closure."""
    keep = list(dict.fromkeys(keep))
    return keep + kept_closure(model, keep)
