"""Graph size: how many ops a traced function holds, nested functions included."""


def count_ops(concrete_function):
    """Ops in `concrete_function`'s graph plus those of every function it calls.

    A `tf.while_loop` keeps its body and condition in nested functions of the
    graph's library, so they are counted too: a dynamic unroll has the same
    count at any T, a static one grows with T.
    """
    graph_def = concrete_function.graph.as_graph_def()
    return len(graph_def.node) + sum(
        len(function.node_def) for function in graph_def.library.function
    )
