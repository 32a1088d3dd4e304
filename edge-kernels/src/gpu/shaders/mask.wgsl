// Fused mask expansion: data[i] = data[i] ± Σ_m keystream_m[offset + i] (mod 2^32).
// One invocation owns one 16-word block and runs every mask of the batch over it, so the
// vector is read and written once per submission whatever the batch size.

struct MaskParams {
    len: u32,       // words in this chunk
    block_lo: u32,  // keystream block of the chunk's first word, low half
    block_hi: u32,  // high half
    n_masks: u32,
}

// Per mask, 12 words: key[0..8], stream_lo, stream_hi, sign (0 add, 1 subtract), pad.
@group(0) @binding(0) var<uniform> params: MaskParams;
@group(0) @binding(1) var<storage, read> masks: array<u32>;
@group(0) @binding(2) var<storage, read_write> data: array<u32>;

@compute @workgroup_size(64)
fn mask_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let blk = gid.x;
    let base = blk * 16u;
    if (base >= params.len) {
        return;
    }
    let ctr = counter_of(params.block_lo, params.block_hi, blk);
    var acc = Block(vec4<u32>(0u), vec4<u32>(0u), vec4<u32>(0u), vec4<u32>(0u));
    for (var m = 0u; m < params.n_masks; m++) {
        let o = m * 12u;
        let k = chacha20_block(
            vec4<u32>(masks[o], masks[o + 1u], masks[o + 2u], masks[o + 3u]),
            vec4<u32>(masks[o + 4u], masks[o + 5u], masks[o + 6u], masks[o + 7u]),
            vec4<u32>(ctr.x, ctr.y, masks[o + 8u], masks[o + 9u]),
        );
        if (masks[o + 10u] == 0u) {
            acc = Block(acc.a + k.a, acc.b + k.b, acc.c + k.c, acc.d + k.d);
        } else {
            acc = Block(acc.a - k.a, acc.b - k.b, acc.c - k.c, acc.d - k.d);
        }
    }
    let n = min(16u, params.len - base);
    for (var i = 0u; i < n; i++) {
        data[base + i] += block_word(acc, i);
    }
}
