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
boundaries; its decays e_{t+1} are a shifted copy of the chunk's decays taken before the state scan
consumes them (one exp per element in each pass). With w_t = lam_t e_t h_{t-1} = lam_t (h_t - x_t):
    dA = sum_t w_t dt_t,   ddt_t = sum_n (w_t A + lam_t B_t u_t),   dB_t = sum_d lam_t dt_t u_t,
    du_t = dt_t sum_n lam_t B_t + D dy_t,   dC_t = sum_d dy_t h_t,   dD = sum_t dy_t u_t.
The gate's factors silu(z) (forward) and dout silu(z), dout silu'(z) (backward) are computed once for the
whole sequence in place in the output and gradient tensors; step sizes and skip chunk by chunk. The
memory beyond inputs, output and gradients is the chunk checkpoints (batch, L / chunk + 1, state,
channels) and three (batch, chunk, state, channels) buffers allocated once per call and reused by every
chunk.

Layouts. Arguments (canonical, as ``cpu_scan``): u, delta, z (batch, channels, L); A (channels, state);
B, C (batch, L, state); D, delta_bias (channels,) or None. Inside: chunk buffers (batch, T, state,
channels), so that sum_n C_t,n h_t,n is one batched matrix product and the per-channel factors are
broadcast along the contiguous channel axis; per-channel quantities of a chunk are time-major copies
(batch, T, channels), so element-wise operations never mix layouts (mixed strides cost several times
more). Step sizes use ``softplus`` below (torch's calls a scalar log1p on CPU, about 2x slower here).
On CPU the scan runs with one intra-op thread (``_scan_context``): its operations are about 100 per
chunk on at most 1 MB each, and with two threads every one of them waits for the other thread to wake
(docs/ssm.md).
"""

import contextlib

import torch

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


SOFTPLUS_THRESHOLD = 20.0  # torch's softplus (and mamba-ssm's) is the identity above it


def softplus(x):
    """torch's softplus (beta 1, threshold 20) from vectorised exp and log: max(x, 0) + log1p(exp(-|x|)),
    with log1p(e) = log(1 + e) - ((1 + e) - 1 - e) / (1 + e) (the rounding of 1 + e corrected; a few ulp)."""
    e = torch.exp(-x.abs())
    one_plus = 1 + e
    log1p = torch.log(one_plus).sub_(((one_plus - 1).sub_(e)).div_(one_plus))
    return torch.where(x > SOFTPLUS_THRESHOLD, x, log1p.add_(x.clamp(min=0)))


def _time_major(tensor, span):
    """Contiguous (batch, T, channels) copy of a chunk of a (batch, channels, L) tensor. Copying the
    chunk's rows first and transposing the small copy is about 3x faster than one strided copy."""
    return tensor[:, :, span].contiguous().transpose(1, 2).contiguous()


def _step_sizes(span, delta, delta_bias, delta_softplus):
    """(raw, dt) of a chunk, time-major (batch, T, channels): delta (+ bias), and softplus of it."""
    raw = _time_major(delta, span)  # may be a view of ``delta`` (length 1): no in-place change
    raw = raw + delta_bias if delta_bias is not None else raw
    return raw, softplus(raw) if delta_softplus else raw


def _fill_terms(dt, dtu, A_t, B, decay, x):
    """Fills (batch, T, state, channels) ``decay`` with exp(dt A) and ``x`` with dt B u from time-major
    (batch, size, channels) ``dt`` and ``dtu``; positions beyond ``size`` get identity maps."""
    size = dt.shape[1]
    torch.mul(dt.unsqueeze(2), A_t, out=decay[:, :size]).exp_()
    torch.mul(dtu.unsqueeze(2), B.unsqueeze(3), out=x[:, :size])
    if size < decay.shape[1]:
        decay[:, size:] = 1.0
        x[:, size:] = 0.0


def _contract_state(vectors, states):
    """sum_n vectors[b, t, n] states[b, t, n, d]: (batch, T, channels)."""
    return torch.matmul(vectors.unsqueeze(2), states).squeeze(2)


@contextlib.contextmanager
def _scan_context(device):
    """Autocast off (the backward pass may run under an autocast context; the scan computes in the dtype
    of its inputs) and, on CPU, one intra-op thread, restored after. The thread setting is process-wide:
    torch operations run meanwhile from other Python threads get one thread too."""
    threads = torch.get_num_threads()
    one_thread = device.type == "cpu" and threads > 1
    with torch.autocast(device.type, enabled=False):
        if one_thread:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if one_thread:
                torch.set_num_threads(threads)


class _ChunkedScan(torch.autograd.Function):
    """Works chunk by chunk; only the inputs and the chunk checkpoints are kept for backward."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk):
        with _scan_context(u.device):
            return _ChunkedScan._forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk)

    @staticmethod
    def _forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk):
        batch, channels, length = u.shape
        n_chunks = -(-length // chunk)
        A_t = A.t().contiguous()
        checkpoints = u.new_empty(batch, n_chunks + 1, A.shape[1], channels)
        checkpoints[:, 0] = 0.0
        decay, h = (u.new_empty(batch, chunk, A.shape[1], channels) for _ in range(2))
        plan = scan_plan(decay, h)
        out = torch.empty_like(u)
        if z is not None:
            torch.sigmoid(z, out=out).mul_(z)  # silu(z), multiplied by y chunk by chunk
        for index in range(n_chunks):
            span = slice(index * chunk, min(length, (index + 1) * chunk))
            size = span.stop - span.start
            _, dt = _step_sizes(span, delta, delta_bias, delta_softplus)
            u_t = _time_major(u, span)
            _fill_terms(dt, dt * u_t, A_t, B[:, span], decay, h)
            h[:, 0].addcmul_(decay[:, 0], checkpoints[:, index])
            run_plan(plan)
            checkpoints[:, index + 1] = h[:, size - 1]
            y = _contract_state(C[:, span], h[:, :size])
            if D is not None:
                y.addcmul_(u_t, D)
            if z is not None:
                out[:, :, span] *= y.transpose(1, 2)
            else:
                out[:, :, span] = y.transpose(1, 2)
        last_state = checkpoints[:, -1].transpose(1, 2).contiguous()
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, checkpoints)
        ctx.delta_softplus, ctx.chunk = bool(delta_softplus), chunk
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        with _scan_context(dout.device):
            return _ChunkedScan._backward(ctx, dout)

    @staticmethod
    def _backward(ctx, dout):
        u, delta, A, B, C, D, z, delta_bias, checkpoints = ctx.saved_tensors
        length, chunk = u.shape[2], ctx.chunk
        A_t = A.t().contiguous()
        du, ddelta = torch.empty_like(u), torch.empty_like(u)
        dz = torch.empty_like(z) if z is not None else None
        dB, dC, dA_t = torch.empty_like(B), torch.empty_like(C), torch.zeros_like(A_t)
        dD = torch.zeros_like(D) if D is not None else None
        dbias = torch.zeros_like(delta_bias) if delta_bias is not None else None
        carry = torch.zeros_like(checkpoints[:, 0])  # e_{t+1} lam_{t+1} entering from the right
        shape = (checkpoints.shape[0], chunk, *checkpoints.shape[2:])
        work, h, later = (u.new_empty(shape) for _ in range(3))
        plan, reverse_plan = scan_plan(work, h), scan_plan(later, work, reverse=True)
        if z is not None:  # out = y silu(z): dy = dout silu(z) into du, dout silu'(z) into dz (x y later)
            gate = torch.sigmoid(z, out=dz)
            silu = torch.mul(z, gate, out=du)
            gate.addcmul_(silu, gate, value=-1).add_(silu).mul_(dout)  # silu' = s + silu (1 - s)
            silu.mul_(dout)
        gradient_y = du if z is not None else dout
        for index in range(checkpoints.shape[1] - 2, -1, -1):
            span = slice(index * chunk, min(length, (index + 1) * chunk))
            size = span.stop - span.start
            raw, dt = _step_sizes(span, delta, delta_bias, ctx.delta_softplus)
            u_t, dy = _time_major(u, span), _time_major(gradient_y, span)
            B_c, C_c, dtu = B[:, span], C[:, span], dt * u_t
            _fill_terms(dt, dtu, A_t, B_c, work, h)
            later[:, :size - 1] = work[:, 1:size]  # e_{t+1}: the reverse scan's decays
            later[:, size - 1:] = 1.0  # the next chunk's e_0 is inside ``carry``
            h[:, 0].addcmul_(work[:, 0], checkpoints[:, index])
            run_plan(plan)  # keeps work[:, 0] = e_0
            first_decay = work[:, 0].clone()
            states = h[:, :size]
            if z is not None:
                y = _contract_state(C_c, states)
                if D is not None:
                    y.addcmul_(u_t, D)
                dz[:, :, span] *= y.transpose(1, 2)
            dC[:, span] = torch.mul(states, dy.unsqueeze(2), out=work[:, :size]).sum(-1)
            lam = work  # lam_t = C_t dy_t + e_{t+1} lam_{t+1}: a reverse scan
            torch.mul(dy.unsqueeze(2), C_c.unsqueeze(3), out=lam[:, :size])
            if size < chunk:
                lam[:, size:] = 0.0
            lam[:, size - 1] += carry
            run_plan(reverse_plan)
            torch.mul(first_decay, lam[:, 0], out=carry)
            lam = lam[:, :size]
            lam_B = _contract_state(B_c, lam)
            dB[:, span] = torch.mul(lam, dtu.unsqueeze(2), out=later[:, :size]).sum(-1)
            x = torch.mul(dtu.unsqueeze(2), B_c.unsqueeze(3), out=later[:, :size])
            w = states.sub_(x).mul_(lam)  # lam_t e_t h_{t-1} = lam_t (h_t - x_t)
            ddt = torch.mul(w, A_t, out=x).sum(2).addcmul_(lam_B, u_t)
            if ctx.delta_softplus:  # softplus' = sigmoid, 1 above the threshold
                ddt = torch.where(raw > SOFTPLUS_THRESHOLD, ddt, ddt * torch.sigmoid(raw))
            ddelta[:, :, span] = ddt.transpose(1, 2)
            if dbias is not None:
                dbias += ddt.sum((0, 1))
            du_t = lam_B.mul_(dt)
            if D is not None:
                dD += (dy * u_t).sum((0, 1))
                du_t.addcmul_(dy, D)
            du[:, :, span] = du_t.transpose(1, 2)
            dA_t += torch.mul(w, dt.unsqueeze(2), out=x).sum((0, 1))
        return du, ddelta, dA_t.t().contiguous(), dB, dC, dD, dz, dbias, None, None


def scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk=None):
    """(out, last_state) in the canonical layout; ``chunk`` tokens per chunk, a power of two (default:
    ``chunk_length``)."""
    batch, channels, length = u.shape
    chunk = chunk or chunk_length(batch, channels, A.shape[1], length)
    if chunk & (chunk - 1):
        raise ValueError(f"scan_chunked: chunk must be a power of two, got {chunk}")
    return _ChunkedScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk)
