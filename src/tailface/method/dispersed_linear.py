"""The linear part of the dispersion head as one autograd function with a hand-written backward.

Forward: logits of the features against ``[W_head; Phi]`` (``Phi`` = segment mean of the tail rows
per super class, optionally re-normalised) and against the member rows of some super classes.
Backward writes the classifier gradient into ONE freshly allocated ``N x d`` tensor (head rows by a
matrix product, tail rows by gathering ``grad Phi / n_g``, member rows added in place). Plain
autograd would allocate, zero-fill and add several ``N x d`` tensors (one per slice/gather of the
weight), which at paper scale costs as much as the matrix products it saves.
"""

from __future__ import annotations

import torch


class _DispersedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, f, w, super_of_tail, sizes, members, pair_rows, num_head, renormalize):
        nh = num_head
        w_head, w_tail = w[:nh], w[nh:]
        phi = w.new_zeros(len(sizes), w.shape[1]).index_add_(0, super_of_tail, w_tail)
        phi.div_(sizes.to(w.dtype)[:, None])
        norm = None
        if renormalize:
            norm = phi.norm(dim=1, keepdim=True).clamp_min(1e-12)
            phi = phi / norm
        agg = torch.cat([f @ w_head.t(), f @ phi.t()], dim=1)
        wm = w_tail.index_select(0, members.reshape(-1))
        if pair_rows is None:  # grid: every feature against every listed member
            member_logits = f @ wm.t()
        else:  # pairs: feature pair_rows[q] against the members of block q
            pair_members = wm.view(*members.shape, w.shape[1])
            member_logits = torch.einsum("qd,qmd->qm", f.index_select(0, pair_rows), pair_members)
        ctx.save_for_backward(f, w, phi, norm, super_of_tail, sizes, members, pair_rows, wm)
        ctx.num_head = nh
        return agg, member_logits

    @staticmethod
    def backward(ctx, g_agg, g_mem):
        f, w, phi, norm, super_of_tail, sizes, members, pair_rows, wm = ctx.saved_tensors
        nh = ctx.num_head
        d = w.shape[1]
        if g_agg is None:
            g_agg = f.new_zeros(f.shape[0], nh + len(sizes))
        if g_mem is None:
            g_mem = f.new_zeros(f.shape[0], wm.shape[0]) if pair_rows is None else f.new_zeros(members.shape)
        g_head, g_phi_logits = g_agg[:, :nh], g_agg[:, nh:]
        grad_f = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_f = g_head @ w[:nh] + g_phi_logits @ phi
            if pair_rows is None:
                grad_f += g_mem @ wm
            else:
                grad_f.index_add_(0, pair_rows, torch.einsum("qm,qmd->qd", g_mem, wm.view(*members.shape, d)))
        if ctx.needs_input_grad[1]:
            grad_w = torch.empty_like(w)
            torch.mm(g_head.t(), f, out=grad_w[:nh])
            g_phi = g_phi_logits.t() @ f
            if norm is not None:
                g_phi = (g_phi - phi * (g_phi * phi).sum(1, keepdim=True)) / norm
            g_phi.div_(sizes.to(w.dtype)[:, None])
            torch.index_select(g_phi, 0, super_of_tail, out=grad_w[nh:])
            if pair_rows is None:
                g_wm = g_mem.t() @ f
            else:
                g_wm = (g_mem[:, :, None] * f.index_select(0, pair_rows)[:, None, :]).reshape(-1, d)
            grad_w[nh:].index_add_(0, members.reshape(-1), g_wm)
        return grad_f, grad_w, None, None, None, None, None, None


def dispersed_linear(f: torch.Tensor, w: torch.Tensor, num_head: int, super_of_tail: torch.Tensor,
                     sizes: torch.Tensor, members: torch.Tensor, pair_rows: torch.Tensor | None = None,
                     renormalize_phi: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(agg, member_logits)``: ``agg`` = ``f`` against ``[w[:num_head]; Phi]`` (``B x (N_h+N_k)``);
    ``members`` (``Q x m`` tail indices). With ``pair_rows`` (``Q``): ``member_logits[q, j] =
    f[pair_rows[q]] . w_tail[members[q, j]]`` (``Q x m``); without: ``f`` against every listed
    member (``B x Q*m``)."""
    return _DispersedLinear.apply(f, w, super_of_tail, sizes, members, pair_rows, int(num_head), bool(renormalize_phi))
