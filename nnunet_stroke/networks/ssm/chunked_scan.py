"""Chunked parallel selective scan in pure PyTorch: runs on any device, trains in O(L / chunk) memory.

Same recurrence as ``numba_kernels`` (Gu & Dao 2023, Algorithm 2), per batch b, channel d, state n:

    h_t = e_t * h_{t-1} + x_t,   e_t = exp(dt_t * A_d,n) (exponent <= 0),   x_t = dt_t * B_t,n * u_t
    y_t = sum_n C_t,n * h_t,n + D_d * u_t,   out_t = y_t * silu(z_t)

The sequence is cut into chunks of a power-of-two length T (a Python loop over chunks; none over
tokens). Inside a chunk all tokens are solved at once by a parallel prefix scan of the affine maps
h -> e h + x, composed as (e2, x2) o (e1, x1) = (e2 e1, e2 x1 + x2): Blelloch's work-efficient scan
(an up-sweep and a down-sweep of log2 T levels each, every level one in-place operation on the
tokens of a strided view, so about three passes over the chunk in all). The state entering the
chunk is folded into its first input, x_0 + e_0 h_in. Decays are only ever multiplied (products of
exp(dt A) <= 1, exponents dt A <= 0; underflow to 0 is the exact limit): there is no division by
cumulative decays, which overflows in float32 after a few dozen tokens at Mamba's step sizes
(docs/ssm.md).

Backward (``_ChunkedScan``): the forward pass keeps only the state entering each chunk. Chunks are
revisited last to first; each recomputes its states from that checkpoint, then solves the adjoint
lam_t = C_t dy_t + e_{t+1} lam_{t+1} by the same scan run in reverse, with lam carried across chunk
boundaries. With w_t = lam_t e_t h_{t-1}:
    dA = sum_t w_t dt_t,   ddt_t = sum_n (w_t A + lam_t B_t u_t),   dB_t = sum_d lam_t dt_t u_t,
    du_t = dt_t sum_n lam_t B_t + D dy_t,   dC_t = sum_d dy_t h_t,   dD = sum_t dy_t u_t.
Memory beyond inputs and gradients: the (batch, channels, L) step sizes and gate, the chunk
checkpoints (batch, L / chunk, channels, state), and the working set of one chunk, about six
(batch, chunk, channels, state) tensors -- independent of L.

Layout (canonical, as ``cpu_scan``): u, delta, z (batch, channels, L); A (channels, state);
B, C (batch, L, state); D, delta_bias (channels,) or None.
"""

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 2 ** 19  # batch * chunk * channels * state elements per chunk (2 MB in float32)
MAX_CHUNK = 4096


def chunk_length(batch, channels, n_state, length):
    """Tokens per chunk: the power of two with about CHUNK_ELEMENTS elements per chunk tensor
    (at most MAX_CHUNK), no longer than the sequence rounded up to a power of two."""
    per_token = max(1, batch * channels * n_state)
    chunk = 1
    while chunk * 2 * per_token <= CHUNK_ELEMENTS and chunk < min(MAX_CHUNK, length):
        chunk *= 2
    return chunk


def prefix_scan_(decay, x, reverse=False):
    """In place, along dim 1 (a power-of-two length): x_t becomes h_t = decay_t h_{t-1} + x_t from
    h = 0 (reverse: h_t = decay_t h_{t+1} + x_t from the end). ``decay`` is overwritten too."""
    length, k = x.shape[1], 1

    def levels(k):
        shape = (x.shape[0], length // (2 * k), 2 * k, *x.shape[2:])
        return x.view(shape), decay.view(shape)

    while k < length:  # up-sweep: the last token of every block of 2k combines the block
        xs, ds = levels(k)
        into, outof = (0, k) if reverse else (2 * k - 1, k - 1)
        xs[:, :, into].addcmul_(ds[:, :, into], xs[:, :, outof])
        if 2 * k < length:
            ds[:, :, into].mul_(ds[:, :, outof])
        k *= 2
    k = length // 4
    while k >= 1:  # down-sweep: the middle token of every block of 2k takes the finished prefix
        xs, ds = levels(k)
        if reverse:
            xs[:, :-1, k].addcmul_(ds[:, :-1, k], xs[:, 1:, 0])
        else:
            xs[:, 1:, k - 1].addcmul_(ds[:, 1:, k - 1], xs[:, :-1, 2 * k - 1])
        k //= 2
    return x


def _padded(tensor, length, value):
    """``tensor`` extended along dim 1 to ``length`` with ``value`` (identity maps: decay 1, input 0)."""
    missing = length - tensor.shape[1]
    if not missing:
        return tensor
    return torch.cat([tensor, tensor.new_full((tensor.shape[0], missing, *tensor.shape[2:]), value)], 1)


def _chunk_terms(dt, u, A, B, chunk):
    """Decays exp(dt A) and inputs dt B u of one chunk, (batch, chunk, channels, state); a shorter last
    chunk is padded with identity maps, which leave every real token's state unchanged."""
    decay = _padded(torch.exp(dt.unsqueeze(-1) * A), chunk, 1.0)
    x = _padded((dt * u).unsqueeze(-1) * B.unsqueeze(2), chunk, 0.0)
    return decay, x


def _chunk_states(decay, x, state_in):
    """States of one chunk from the state entering it; consumes ``x`` (becomes the states) and
    ``decay``."""
    x[:, 0].addcmul_(decay[:, 0], state_in)
    return prefix_scan_(decay, x)


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
            span = slice(start, min(length, start + chunk))
            checkpoints[:, index] = state
            h = _chunk_states(*_chunk_terms(dt_t[:, span], u_t[:, span], A, B[:, span], chunk), state)
            h = h[:, :span.stop - start]
            y[:, span] = torch.einsum("btdn,btn->btd", h, C[:, span])
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
        carry = torch.zeros_like(checkpoints[:, 0])  # e_{t+1} lam_{t+1} entering from the right
        for index in range(checkpoints.shape[1] - 1, -1, -1):
            span = slice(index * chunk, min(length, (index + 1) * chunk))
            size = span.stop - span.start
            dt_c, u_c, B_c, dy_c = dt_t[:, span], u_t[:, span], B[:, span], dy_t[:, span]
            state_in = checkpoints[:, index]
            decay, x = _chunk_terms(dt_c, u_c, A, B_c, chunk)
            # lam_t = C_t dy_t + e_{t+1} lam_{t+1}: a reverse scan with the decays shifted by one
            later_decay = torch.cat([decay[:, 1:], decay.new_ones(decay[:, :1].shape)], 1)
            h = _chunk_states(decay.clone(), x, state_in)[:, :size]
            dC[:, span] = torch.einsum("btd,btdn->btn", dy_c, h)
            h_before = torch.cat([state_in.unsqueeze(1), h[:, :-1]], 1)
            del h, x
            lam = _padded(dy_c.unsqueeze(-1) * C[:, span].unsqueeze(2), chunk, 0.0)
            lam[:, size - 1] += carry
            lam = prefix_scan_(later_decay, lam, reverse=True)[:, :size]
            del later_decay
            decay = decay[:, :size]
            carry = decay[:, 0] * lam[:, 0]
            w = lam * decay * h_before
            del h_before, decay
            lam_B = torch.einsum("btdn,btn->btd", lam, B_c)
            ddt[:, span] = torch.einsum("btdn,dn->btd", w, A) + lam_B * u_c
            du[:, span] = lam_B * dt_c
            dB[:, span] = torch.einsum("btd,btdn->btn", dt_c * u_c, lam)
            dA += (w * dt_c.unsqueeze(-1)).sum((0, 1))
        du, ddt = du.transpose(1, 2), ddt.transpose(1, 2)
        dD = None
        if D is not None:
            du = du + D[:, None] * dout
            dD = (dout * u).sum((0, 2))
        if ctx.delta_softplus:  # torch's softplus is the identity above 20
            ddt = torch.where(raw > 20, ddt, ddt * torch.sigmoid(raw))
        return (du, ddt, dA, dB, dC, dD, dz, ddt.sum((0, 2)) if ctx.has_bias else None, None, None)


def scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk=None):
    """(out, last_state) in the canonical layout; ``chunk`` tokens per chunk, a power of two (default:
    ``chunk_length``)."""
    batch, channels, length = u.shape
    chunk = chunk or chunk_length(batch, channels, A.shape[1], length)
    if chunk & (chunk - 1):
        raise ValueError(f"scan_chunked: chunk must be a power of two, got {chunk}")
    return _ChunkedScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk)
