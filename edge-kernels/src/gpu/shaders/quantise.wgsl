// Stochastic quantisation, word for word equal to edge_kernels::quantise (see quantise.rs for
// why). Element i draws keystream word i of (key, stream); one invocation owns one block of 16.
// Integer and fractional parts of t are taken from its bits, not with float arithmetic, so that
// no driver contraction can change a result. A NaN or infinite input records its index
// (the smallest wins) in status[0], which the host initialises to 0xffffffff.

struct QuantParams {
    key_lo: vec4<u32>,
    key_hi: vec4<u32>,
    len: u32,
    block_lo: u32,
    block_hi: u32,
    stream_lo: u32,
    stream_hi: u32,
    range: f32,
    scale: f32,
    top: f32,
}

@group(0) @binding(0) var<uniform> params: QuantParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read_write> status: array<atomic<u32>>;

// floor(t) + (u24 < frac(t) · 2^24) for 0 <= t < 2^32, from the bits of t.
fn round_stochastic(t: f32, u24: u32) -> u32 {
    let bits = bitcast<u32>(t);
    if (bits == 0u) {
        return 0u;
    }
    let e = i32((bits >> 23u) & 0xffu) - 127;
    let m = (bits & 0x7fffffu) | 0x800000u;
    if (e >= 23) {
        return m << u32(e - 23);
    }
    if (e >= 0) {
        let sh = u32(23 - e);
        let frac24 = (m & ((1u << sh) - 1u)) << u32(e + 1);
        return (m >> sh) + select(0u, 1u, u24 < frac24);
    }
    // t < 1: frac · 2^24 = m / 2^k; for an integer u, u < x exactly when u < ceil(x).
    let k = u32(-(e + 1));
    var ceil_frac24 = 1u;
    if (k < 24u) {
        ceil_frac24 = (m + (1u << k) - 1u) >> k;
    }
    return select(0u, 1u, u24 < ceil_frac24);
}

@compute @workgroup_size(64)
fn quantise_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let blk = gid.x;
    let base = blk * 16u;
    if (base >= params.len) {
        return;
    }
    let ctr = counter_of(params.block_lo, params.block_hi, blk);
    let k = chacha20_block(
        params.key_lo,
        params.key_hi,
        vec4<u32>(ctr.x, ctr.y, params.stream_lo, params.stream_hi),
    );
    let n = min(16u, params.len - base);
    for (var i = 0u; i < n; i++) {
        let x = input[base + i];
        if ((bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u) {
            atomicMin(&status[0], base + i);
            output[base + i] = 0u;
            continue;
        }
        let shifted = clamp(x, -params.range, params.range) + params.range;
        let t = min(shifted * params.scale, params.top);
        output[base + i] = round_stochastic(t, block_word(k, i) >> 8u);
    }
}
