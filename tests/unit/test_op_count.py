"""The operator counter behind ``python -m benchmark.perf worldmodel --count-ops``."""

import torch

from benchmark.perf.common import VIEW_OPS, count_ops


def test_counts_each_operator_that_reaches_the_kernels():
    a, b = torch.ones(2, 3), torch.ones(3, 4)
    ops = count_ops(lambda: (a @ b).t().sum())
    assert ops == {"mm": 1, "t": 1, "sum": 1}
    assert {k for k in ops if k not in VIEW_OPS} == {"mm", "sum"}


def test_backward_and_composites_are_counted_as_their_kernels():
    w = torch.ones(3, 2, requires_grad=True)
    x = torch.ones(4, 3)
    ops = count_ops(lambda: torch.nn.functional.linear(x, w.t()).sum().backward())
    assert ops["mm"] >= 2  # forward, and the weight's gradient in backward (linear decomposes to t + mm)
    assert ops["sum"] == 1 and sum(ops.values()) > 4
