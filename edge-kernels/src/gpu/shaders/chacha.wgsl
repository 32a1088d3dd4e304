// ChaCha20 block function in rand_chacha's layout: words 4..11 key, 12..13 a 64-bit block
// counter, 14..15 a 64-bit stream id. The state is four rows of vec4<u32>; a column round
// works on the rows as they are, a diagonal round on rows rotated by 1, 2 and 3 lanes.
// Included by every kernel that needs a keystream.

struct Block {
    a: vec4<u32>,
    b: vec4<u32>,
    c: vec4<u32>,
    d: vec4<u32>,
}

fn rotl(v: vec4<u32>, n: u32) -> vec4<u32> {
    return (v << vec4<u32>(n)) | (v >> vec4<u32>(32u - n));
}

fn quarter_rounds(s: Block) -> Block {
    var a = s.a;
    var b = s.b;
    var c = s.c;
    var d = s.d;
    a += b; d = rotl(d ^ a, 16u);
    c += d; b = rotl(b ^ c, 12u);
    a += b; d = rotl(d ^ a, 8u);
    c += d; b = rotl(b ^ c, 7u);
    return Block(a, b, c, d);
}

fn chacha20_block(key_lo: vec4<u32>, key_hi: vec4<u32>, counter_stream: vec4<u32>) -> Block {
    let init = Block(
        vec4<u32>(0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u),
        key_lo,
        key_hi,
        counter_stream,
    );
    var s = init;
    for (var i = 0u; i < 10u; i++) {
        s = quarter_rounds(s);
        s = quarter_rounds(Block(s.a, s.b.yzwx, s.c.zwxy, s.d.wxyz));
        s = Block(s.a, s.b.wxyz, s.c.zwxy, s.d.yzwx);
    }
    return Block(s.a + init.a, s.b + init.b, s.c + init.c, s.d + init.d);
}

fn block_word(k: Block, i: u32) -> u32 {
    switch (i / 4u) {
        case 0u: { return k.a[i % 4u]; }
        case 1u: { return k.b[i % 4u]; }
        case 2u: { return k.c[i % 4u]; }
        default: { return k.d[i % 4u]; }
    }
}

// The 64-bit counter of block `blk` of a chunk that starts at block (hi, lo).
fn counter_of(lo: u32, hi: u32, blk: u32) -> vec2<u32> {
    let c = lo + blk;
    return vec2<u32>(c, hi + select(0u, 1u, c < lo));
}
