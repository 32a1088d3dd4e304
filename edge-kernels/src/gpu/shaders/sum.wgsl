// Modular sum: acc[i] += Σ_j inputs[j · len + i] (mod 2^32) for `count` vectors laid end to end.
// One invocation owns 16 consecutive words, like the other kernels.

struct SumParams {
    len: u32,
    count: u32,
}

@group(0) @binding(0) var<uniform> params: SumParams;
@group(0) @binding(1) var<storage, read> inputs: array<u32>;
@group(0) @binding(2) var<storage, read_write> acc: array<u32>;

@compute @workgroup_size(64)
fn sum_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let base = gid.x * 16u;
    if (base >= params.len) {
        return;
    }
    let n = min(16u, params.len - base);
    for (var i = 0u; i < n; i++) {
        var s = acc[base + i];
        for (var j = 0u; j < params.count; j++) {
            s += inputs[j * params.len + base + i];
        }
        acc[base + i] = s;
    }
}
