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
boundaries. With w_t = lam_t e_t h_{t-1} = lam_t (h_t - x_t):
    dA = sum_t w_t dt_t,   ddt_t = sum_n (w_t A + lam_t B_t u_t),   dB_t = sum_d lam_t dt_t u_t,
    du_t = dt_t sum_n lam_t B_t + D dy_t,   dC_t = sum_d dy_t h_t,   dD = sum_t dy_t u_t.
Step sizes, gate and skip are computed chunk by chunk too, so the memory beyond inputs, output and
gradients is the chunk checkpoints (batch, L / chunk, channels, state) and three (batch, chunk, channels,
state) buffers allocated once per call and reused by every chunk (the backward pass recomputes the decays
rather than keep a second buffer of them).

Layout (canonical, as ``cpu_scan``): u, delta, z (batch, channels, L); A (channels, state);
B, C (batch, L, state); D, delta_bias (channels,) or None.
"""

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 2 ** 18  # batch * chunk * channels * state elements per chunk (1 MB in float32)
MAX_CHUNK = 4096


def chunk_length(batch, channels, n_state, length):
    """Tokens per chunk: the power of two with about CHUNK_ELEMENTS elements per chunk tensor
    (at most MAX_CHUNK), no longer than the sequence rounded up to a power of two."""
    per_token = max(1, batch * channels * n_state)
    chunk = 1
    while chunk * 2 * per_token <= CHUNK_ELEMENTS and chunk < min(MAX_CHUNK, length):
        chunk *= 2
    return chunk


def scan_plan(decay, x, reverse=False):
    """The in-place steps of Blelloch's scan on these two buffers (views made once, reusable for every
    chunk that fills the same buffers): see ``prefix_scan_``."""
    length, k, steps = x.shape[1], 1, []

    def levels(k):
        shape = (x.shape[0], length // (2 * k), 2 * k, *x.shape[2:])
        return x.view(shape), decay.view(shape)

    while k < length:  # up-sweep: the last token of every block of 2k combines the block
        xs, ds = levels(k)
        into, outof = (0, k) if reverse else (2 * k - 1, k - 1)
        last = 2 * k >= length  # the decay products of the last level are never read
        steps.append((xs[:, :, into], ds[:, :, into], xs[:, :, outof], None if last else ds[:, :, outof]))
        k *= 2
    k = length // 4
    while k >= 1:  # down-sweep: the middle token of every block of 2k takes the finished prefix
        xs, ds = levels(k)
        if reverse:
            steps.append((xs[:, :-1, k], ds[:, :-1, k], xs[:, 1:, 0], None))
        else:
            steps.append((xs[:, 1:, k - 1], ds[:, 1:, k - 1], xs[:, :-1, 2 * k - 1], None))
        k //= 2
    return steps


def run_plan(steps):
    """Runs the steps of ``scan_plan`` in order."""
    for x_into, decay_into, x_from, decay_from in steps:
        x_into.addcmul_(decay_into, x_from)
        if decay_from is not None:
            decay_into.mul_(decay_from)


def prefix_scan_(decay, x, reverse=False):
    """In place, along dim 1 (a power-of-two length): x_t becomes h_t = decay_t h_{t-1} + x_t from
    h = 0 (reverse: h_t = decay_t h_{t+1} + x_t from the end). ``decay`` is overwritten too."""
    run_plan(scan_plan(decay, x, reverse))
    return x


def _chunk_terms(dt, u, A, B, decay, x):
    """Fills the (batch, chunk, channels, state) buffers ``decay`` with exp(dt A) and ``x`` with dt B u;
    the positions of a shorter last chunk beyond its tokens get identity maps (decay 1, input 0), which
    leave every real token's state unchanged."""
    size = dt.shape[1]
    torch.mul(dt.unsqueeze(-1), A, out=decay[:, :size]).exp_()
    torch.mul((dt * u).unsqueeze(-1), B.unsqueeze(2), out=x[:, :size])
    if size < decay.shape[1]:
        decay[:, size:] = 1.0
        x[:, size:] = 0.0


def _chunk_states(plan, decay, x, state_in):
    """In place: ``x`` becomes the chunk's states from the state entering it (``decay`` is consumed);
    ``plan`` is ``scan_plan(decay, x)``."""
    x[:, 0].addcmul_(decay[:, 0], state_in)
    run_plan(plan)


def _chunk_inputs(span, u, delta, z, delta_bias, delta_softplus):
    """(batch, T, channels) chunks of u and z and the step sizes (before and after the softplus); nothing
    of the sequence's length is materialised."""
    u_c, z_c, raw = (None if t is None else _time_major(t, span) for t in (u, z, delta))
    raw = raw + delta_bias if delta_bias is not None else raw
    return u_c, z_c, raw, F.softplus(raw) if delta_softplus else raw


def _time_major(tensor, span):
    """Contiguous (batch, T, channels) copy of a chunk of a (batch, channels, L) tensor (strided views
    make PyTorch's small matrix products and element-wise kernels several times slower). Copying the
    chunk's rows first and transposing the small copy is about 3x faster than one strided copy."""
    return tensor[:, :, span].contiguous().transpose(1, 2).contiguous()


class _ChunkedScan(torch.autograd.Function):
    """Works chunk by chunk on (batch, T, channels) views of the (batch, channels, L) inputs; the
    chunk-sized buffers are allocated once per call and reused by every chunk. Only the inputs and the
    chunk checkpoints are kept for backward."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk):
        batch, channels, length = u.shape
        starts = range(0, length, chunk)
        state = u.new_zeros(batch, channels, A.shape[1])
        checkpoints = u.new_empty(batch, len(starts), channels, A.shape[1])
        decay, h = (u.new_empty(batch, chunk, channels, A.shape[1]) for _ in range(2))
        plan = scan_plan(decay, h)
        out = torch.empty_like(u)
        for index, start in enumerate(starts):
            span = slice(start, min(length, start + chunk))
            size = span.stop - start
            u_c, z_c, _, dt_c = _chunk_inputs(span, u, delta, z, delta_bias, delta_softplus)
            checkpoints[:, index] = state
            _chunk_terms(dt_c, u_c, A, B[:, span], decay, h)
            _chunk_states(plan, decay, h, state)
            y_c = torch.einsum("btdn,btn->btd", h[:, :size], C[:, span])
            if D is not None:
                y_c += D * u_c
            out[:, :, span] = (y_c * F.silu(z_c) if z is not None else y_c).transpose(1, 2)
            state = h[:, size - 1].clone()
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, checkpoints)
        ctx.delta_softplus, ctx.chunk = bool(delta_softplus), chunk
        ctx.mark_non_differentiable(state)
        return out, state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        u, delta, A, B, C, D, z, delta_bias, checkpoints = ctx.saved_tensors
        length, chunk = u.shape[2], ctx.chunk
        du, ddelta = torch.empty_like(u), torch.empty_like(u)
        dz = torch.empty_like(z) if z is not None else None
        dB, dC, dA = torch.empty_like(B), torch.empty_like(C), torch.zeros_like(A)
        dD = torch.zeros_like(D) if D is not None else None
        dbias = torch.zeros_like(delta_bias) if delta_bias is not None else None
        carry = torch.zeros_like(checkpoints[:, 0])  # e_{t+1} lam_{t+1} entering from the right
        shape = (checkpoints.shape[0], chunk, *checkpoints.shape[2:])
        work, h, lam = (u.new_empty(shape) for _ in range(3))
        plan, reverse_plan = scan_plan(work, h), scan_plan(work, lam, reverse=True)
        for index in range(checkpoints.shape[1] - 1, -1, -1):
            span = slice(index * chunk, min(length, (index + 1) * chunk))
            size = span.stop - span.start
            u_c, z_c, raw_c, dt_c = _chunk_inputs(span, u, delta, z, delta_bias, ctx.delta_softplus)
            B_c, C_c, dy_c = B[:, span], C[:, span], _time_major(dout, span)
            state_in = checkpoints[:, index]
            _chunk_terms(dt_c, u_c, A, B_c, work, h)
            _chunk_states(plan, work, h, state_in)
            if z is not None:  # out = y silu(z): the gradient reaching y, and the gate's own
                y_c = torch.einsum("btdn,btn->btd", h[:, :size], C_c)
                if D is not None:
                    y_c += D * u_c
                gate = torch.sigmoid(z_c)
                dz[:, :, span] = (dy_c * y_c * gate * (1 + z_c * (1 - gate))).transpose(1, 2)
                dy_c = dy_c * z_c * gate
            dC[:, span] = torch.einsum("btd,btdn->btn", dy_c, h[:, :size])
            # lam_t = C_t dy_t + e_{t+1} lam_{t+1}: a reverse scan with the decays shifted by one
            later_decay = work  # e_{t+1}, recomputed (the forward scan consumed the decays)
            torch.mul(dt_c[:, 1:].unsqueeze(-1), A, out=later_decay[:, :size - 1]).exp_()
            later_decay[:, size - 1:] = 1.0  # the next chunk's e_0 is inside ``carry``
            torch.mul(dy_c.unsqueeze(-1), C_c.unsqueeze(2), out=lam[:, :size])
            if size < chunk:
                lam[:, size:] = 0.0
            lam[:, size - 1] += carry
            run_plan(reverse_plan)
            carry = torch.exp(dt_c[:, 0].unsqueeze(-1) * A) * lam[:, 0]
            x = work[:, :size]  # e_t h_{t-1} = h_t - x_t, x_t = dt_t B_t u_t
            torch.mul((dt_c * u_c).unsqueeze(-1), B_c.unsqueeze(2), out=x)
            w = h[:, :size].sub_(x).mul_(lam[:, :size])  # lam_t e_t h_{t-1}
            lam_B = torch.einsum("btdn,btn->btd", lam[:, :size], B_c)
            ddt = torch.einsum("btdn,dn->btd", w, A) + lam_B * u_c
            if ctx.delta_softplus:  # torch's softplus is the identity above 20
                ddt = torch.where(raw_c > 20, ddt, ddt * torch.sigmoid(raw_c))
            ddelta[:, :, span] = ddt.transpose(1, 2)
            du_c = lam_B * dt_c
            if D is not None:
                du_c += D * dy_c
                dD += (dy_c * u_c).sum((0, 1))
            du[:, :, span] = du_c.transpose(1, 2)
            if dbias is not None:
                dbias += ddt.sum((0, 1))
            dB[:, span] = torch.einsum("btd,btdn->btn", dt_c * u_c, lam[:, :size])
            dA += torch.mul(w, dt_c.unsqueeze(-1), out=x).sum((0, 1))
        return du, ddelta, dA, dB, dC, dD, dz, dbias, None, None


def scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk=None):
    """(out, last_state) in the canonical layout; ``chunk`` tokens per chunk, a power of two (default:
    ``chunk_length``)."""
    batch, channels, length = u.shape
    chunk = chunk or chunk_length(batch, channels, A.shape[1], length)
    if chunk & (chunk - 1):
        raise ValueError(f"scan_chunked: chunk must be a power of two, got {chunk}")
    return _ChunkedScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk)
