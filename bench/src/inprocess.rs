//! The aggregator's side of SecAgg+ at n = 1 000, in process: the server's time for the masked
//! inputs, the unmask replies and the unmasking, against its floor measured in the same run (a
//! ChaCha20 keystream per survivor and k per dropped client, plus the modular sum of the
//! survivors' vectors); 10 % of the clients drop before their input. Driven by
//! `flock_protocol::sim` (real clients and server in one thread), like the protocol's bench.

use flock_protocol::sim::phase_costs;

/// The server's cost at `n` clients for each `d`, as a Markdown table.
pub(crate) fn table(n: usize, ds: &[u32]) -> anyhow::Result<String> {
    let mut out = String::from(
        "| clients | d | k | t | server: inputs + unmask | floor | server / floor |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for &d in ds {
        let c = phase_costs(n, d)?;
        let row = format!(
            "| {n} | {d} | {} | {} | {:.1} ms | {:.1} ms | **{:.2}** |\n",
            c.k,
            c.t,
            c.server.as_secs_f64() * 1e3,
            c.server_floor.as_secs_f64() * 1e3,
            c.server.as_secs_f64() / c.server_floor.as_secs_f64()
        );
        eprint!("{row}");
        out.push_str(&row);
    }
    Ok(out)
}
