"""Plain multi-layer perceptron used for the Pre-MLP, Post-MLP, encoders' heads and experts."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Module):
    r"""``Linear -> GELU -> Dropout`` per hidden layer, then a final ``Linear``.

    .. math::
        h_{l+1} = \operatorname{Dropout}(\operatorname{GELU}(W_l h_l + b_l)), \qquad y = W_L h_L + b_L

    Args:
        in_dim (int): input width.
        hidden (Sequence[int]): hidden widths (may be empty: one Linear).
        out_dim (int): output width.
        dropout (float): dropout after each hidden activation. (default: 0.0)
        act_last (bool): also apply GELU (and dropout) after the final Linear. (default: ``False``)

    Shapes:
        - **input:** :math:`(*, F_{in})`
        - **output:** :math:`(*, F_{out})`
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float = 0.0,
                 act_last: bool = False) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"widths must be >= 1, got in={in_dim}, hidden={list(hidden)}, out={out_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        dims = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2 or act_last:
                layers += [nn.GELU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.net:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
