"""Chunked parallel selective scan in pure PyTorch: runs on any device, trains in O(L / chunk) memory.

Same recurrence as ``numba_kernels`` (Gu & Dao 2023, Algorithm 2), per batch b, channel d, state n:

    h_t = e_t * h_{t-1} + x_t,   e_t = exp(dt_t * A_d,n) (exponent <= 0),   x_t = dt_t * B_t,n * u_t
    y_t = sum_n C_t,n * h_t,n + D_d * u_t,   out_t = y_t * silu(z_t)

The sequence is cut into chunks (a Python loop over chunks; none over tokens). Inside a chunk all
tokens are solved at once by a parallel prefix scan of the affine maps h -> e h + x: groups of
``GROUP`` tokens are scanned by Hillis-Steele doubling, (e2, x2) o (e1, x1) = (e2 e1, e2 x1 + x2);
the groups' end states are scanned recursively the same way and carried into each group. Decays are
only ever multiplied (products of exp(dt A) <= 1, underflow to 0 is the exact limit): there is no
division by cumulative decays, which overflows in float32 after a few dozen tokens at Mamba's step
sizes (docs/ssm.md). The state entering a chunk reaches token t through the chunk's cumulative decay
P_t, so h_t = scan_t + P_t h_in.

Backward (``_ChunkedScan``): the forward pass keeps only the state entering each chunk. Chunks are
revisited last to first; each recomputes its states from that checkpoint, then solves the adjoint
lam_t = C_t dy_t + e_{t+1} lam_{t+1} by the same scan run in reverse, with lam carried across chunk
boundaries. With w_t = lam_t e_t h_{t-1}:
    dA = sum_t w_t dt_t,   ddt_t = sum_n (w_t A + lam_t B_t u_t),   dB_t = sum_d lam_t dt_t u_t,
    du_t = dt_t sum_n lam_t B_t + D dy_t,   dC_t = sum_d dy_t h_t,   dD = sum_t dy_t u_t.
Memory beyond inputs and gradients: the (batch, channels, L) step sizes and gate, the chunk
checkpoints (batch, L / chunk, channels, state), and the working set of one chunk, about a dozen
(batch, chunk, channels, state) tensors -- independent of L.

Layout (canonical, as ``cpu_scan``): u, delta, z (batch, channels, L); A (channels, state);
B, C (batch, L, state); D, delta_bias (channels,) or None.
"""

import torch
import torch.nn.functional as F

GROUP = 16  # tokens scanned by doubling before the next level of the prefix scan
CHUNK_ELEMENTS = 2 ** 19  # batch * chunk * channels * state elements per chunk (2 MB in float32)
MAX_CHUNK = 4096


def chunk_length(batch, channels, n_state, length):
    """Tokens per chunk: a power of two with about CHUNK_ELEMENTS elements per chunk state tensor."""
    per_token = max(1, batch * channels * n_state)
    chunk = GROUP
    while chunk * 2 * per_token <= CHUNK_ELEMENTS and chunk < MAX_CHUNK:
        chunk *= 2
    return max(1, min(chunk, length))


def _doubling_scan(decay, x, dim, reverse):
    """Hillis-Steele inclusive scan along ``dim``: returns (states, cumulative decays), new tensors."""
    size = x.shape[dim]
    step = 1
    while step < size:
        kept = size - step if reverse else 0  # tokens with nothing more to combine at this step
        target, source = (0, step) if reverse else (step, 0)
        x_next, decay_next = torch.empty_like(x), torch.empty_like(decay)
        x_next.narrow(dim, kept, step).copy_(x.narrow(dim, kept, step))
        decay_next.narrow(dim, kept, step).copy_(decay.narrow(dim, kept, step))
        torch.addcmul(x.narrow(dim, target, size - step), decay.narrow(dim, target, size - step),
                      x.narrow(dim, source, size - step), out=x_next.narrow(dim, target, size - step))
        torch.mul(decay.narrow(dim, target, size - step), decay.narrow(dim, source, size - step),
                  out=decay_next.narrow(dim, target, size - step))
        x, decay = x_next, decay_next
        step *= 2
    return x, decay


def prefix_scan(decay, x, reverse=False):
    """h_t = decay_t h_{t-1} + x_t along dim 1 from h = 0 (reverse: h_t = decay_t h_{t+1} + x_t from
    the end). Returns (h, P), P_t the product of the decays from the start (end) through t.
    Inputs are not modified."""
    length = x.shape[1]
    if length <= GROUP:
        return _doubling_scan(decay, x, 1, reverse)
    groups = -(-length // GROUP)
    pad = groups * GROUP - length
    if pad:  # identity maps (decay 1, input 0) at the end change no state of the real tokens
        decay = torch.cat([decay, decay.new_ones(decay.shape[0], pad, *decay.shape[2:])], 1)
        x = torch.cat([x, x.new_zeros(x.shape[0], pad, *x.shape[2:])], 1)
    shape = (x.shape[0], groups, GROUP, *x.shape[2:])
    h, cumulative = _doubling_scan(decay.reshape(shape), x.reshape(shape), 2, reverse)
    edge = 0 if reverse else GROUP - 1  # the state each group hands to the next one
    carried, carried_decay = prefix_scan(cumulative.select(2, edge), h.select(2, edge), reverse)
    into, outof = (slice(0, -1), slice(1, None)) if reverse else (slice(1, None), slice(0, -1))
    h[:, into].addcmul_(cumulative[:, into], carried[:, outof].unsqueeze(2))
    cumulative[:, into].mul_(carried_decay[:, outof].unsqueeze(2))
    h, cumulative = h.reshape(x.shape), cumulative.reshape(x.shape)
    return (h[:, :length], cumulative[:, :length]) if pad else (h, cumulative)


def _chunk_terms(dt, u, A, B):
    """Decays exp(dt A) and inputs dt B u of one chunk, (batch, T, channels, state)."""
    decay = torch.exp(dt.unsqueeze(-1) * A)
    x = (dt * u).unsqueeze(-1) * B.unsqueeze(2)
    return decay, x


def _chunk_states(dt, u, A, B, state_in):
    """States of one chunk (batch, T, channels, state) from the state entering it, plus its terms."""
    decay, x = _chunk_terms(dt, u, A, B)
    h, cumulative = prefix_scan(decay, x)
    h.addcmul_(cumulative, state_in.unsqueeze(1))
    return h, decay, x


def _output_of_states(h, C):
    """y_t = sum_n C_t,n h_t,n: (batch, T, channels)."""
    return torch.matmul(h, C.unsqueeze(-1)).squeeze(-1)


class _ChunkedScan(torch.autograd.Function):
    """Time-major working copies (batch, L, channels) of u and the step sizes make each chunk a
    contiguous slice; B and C are already (batch, L, state)."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk):
        batch, channels, length = u.shape
        raw = delta + delta_bias[:, None] if delta_bias is not None else delta
        dt = F.softplus(raw) if delta_softplus else raw
        u_t, dt_t = u.transpose(1, 2).contiguous(), dt.transpose(1, 2).contiguous()
        starts = range(0, length, chunk)
        state = u.new_zeros(batch, channels, A.shape[1])
        checkpoints = u.new_empty(batch, len(starts), channels, A.shape[1])
        y = torch.empty_like(u_t)
        for index, start in enumerate(starts):
            stop = min(length, start + chunk)
            checkpoints[:, index] = state
            h, _, _ = _chunk_states(dt_t[:, start:stop], u_t[:, start:stop], A, B[:, start:stop], state)
            y[:, start:stop] = _output_of_states(h, C[:, start:stop])
            state = h[:, -1]
        y = y.transpose(1, 2)
        if D is not None:
            y = y + D[:, None] * u
        out = y * F.silu(z) if z is not None else y
        ctx.save_for_backward(u, raw, A, B, C, D, z, y if z is not None else None, checkpoints)
        ctx.delta_softplus, ctx.has_bias, ctx.chunk = bool(delta_softplus), delta_bias is not None, chunk
        last_state = state.clone()
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        u, raw, A, B, C, D, z, y, checkpoints = ctx.saved_tensors
        dz = None
        if z is not None:
            gate = torch.sigmoid(z)
            dz = dout * y * gate * (1 + z * (1 - gate))
            dout = dout * z * gate
        dt = F.softplus(raw) if ctx.delta_softplus else raw
        u_t, dt_t, dy_t = (t.transpose(1, 2).contiguous() for t in (u, dt, dout))
        length, chunk = u.shape[2], ctx.chunk
        du, ddt = torch.empty_like(u_t), torch.empty_like(u_t)
        dB, dC = torch.empty_like(B), torch.empty_like(C)
        dA = torch.zeros_like(A)
        carry = None  # e_{t+1} lam_{t+1} entering the chunk from its right
        for index in range(checkpoints.shape[1] - 1, -1, -1):
            span = slice(index * chunk, min(length, (index + 1) * chunk))
            dt_c, u_c, B_c, dy_c = dt_t[:, span], u_t[:, span], B[:, span], dy_t[:, span]
            state_in = checkpoints[:, index]
            h, decay, _ = _chunk_states(dt_c, u_c, A, B_c, state_in)
            dC[:, span] = torch.matmul(dy_c.unsqueeze(2), h).squeeze(2)
            h_before = torch.cat([state_in.unsqueeze(1), h[:, :-1]], 1)
            del h
            later_decay = torch.cat([decay[:, 1:], decay.new_ones(decay[:, :1].shape)], 1)
            lam, cumulative = prefix_scan(later_decay, dy_c.unsqueeze(-1) * C[:, span].unsqueeze(2),
                                          reverse=True)
            if carry is not None:
                lam.addcmul_(cumulative, carry.unsqueeze(1))
            del cumulative, later_decay
            carry = decay[:, 0] * lam[:, 0]
            w = lam * decay * h_before
            del h_before, decay
            lam_B = torch.matmul(lam, B_c.unsqueeze(-1)).squeeze(-1)
            ddt[:, span] = (w * A).sum(-1) + lam_B * u_c
            du[:, span] = lam_B * dt_c
            dB[:, span] = torch.matmul((dt_c * u_c).unsqueeze(2), lam).squeeze(2)
            dA += torch.einsum("btdn,btd->dn", w, dt_c)
        du, ddt = du.transpose(1, 2), ddt.transpose(1, 2)
        dD = None
        if D is not None:
            du = du + D[:, None] * dout
            dD = (dout * u).sum((0, 2))
        if ctx.delta_softplus:  # torch's softplus is the identity above 20
            ddt = torch.where(raw > 20, ddt, ddt * torch.sigmoid(raw))
        return (du, ddt, dA, dB, dC, dD, dz, ddt.sum((0, 2)) if ctx.has_bias else None, None, None)


def scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk=None):
    """(out, last_state) in the canonical layout; ``chunk`` tokens per chunk (default: ``chunk_length``)."""
    batch, channels, length = u.shape
    chunk = chunk or chunk_length(batch, channels, A.shape[1], length)
    return _ChunkedScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk)
