//! Training throughput (samples/s) of the MLP and the CNN on burn's CPU backend and on wgpu, in
//! one run:
//!
//! ```text
//! cargo run --release -p flock-agent --example train_throughput [-- --epochs 5 --batch 32,256]
//! ```
//!
//! Each case trains on the fixture's 80 % split: one warm-up epoch (on wgpu it compiles the
//! shaders) and then `--epochs` timed epochs, all synchronised by reading the loss back after
//! every epoch. Figures go to stdout as a Markdown table with the ratio GPU/CPU.

use std::time::Instant;

use flock_agent::data::{CsvSource, DataSource, Standardizer, split};
use flock_agent::train::{BackendChoice, TrainConfig, TrainDevice, train_local};
use flock_model::{ModelSpec, Params};

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let epochs: usize = arg("--epochs", 5);
    let batches: String = arg("--batch", "32,256".to_string());
    let batches: Vec<usize> = batches.split(',').filter_map(|b| b.parse().ok()).collect();
    let data_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/data");
    let cases = [
        ("breast_cancer", 2, ModelSpec::default_mlp(30, 2)),
        ("digits", 10, ModelSpec::default_mlp(64, 10)),
        ("digits", 10, ModelSpec::digits_cnn()),
    ];
    let cpu = TrainDevice::cpu();
    let gpu = TrainDevice::select(BackendChoice::Gpu)
        .map_err(|e| eprintln!("GPU column skipped: {e}"))
        .ok();
    println!("CPU: {}", cpu.backend());
    if let Some(gpu) = &gpu {
        println!("GPU: {}", gpu.backend());
    }
    println!();
    println!("| dataset | model | params | batch | CPU samples/s | GPU samples/s | GPU / CPU |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, classes, spec) in cases {
        let data = CsvSource::new(format!("{data_dir}/{name}.csv"), "label").load(classes)?;
        let (mut train, _) = split(&data, classes, 0.2, 0)?;
        Standardizer::fit(&train).apply(&mut train)?;
        let init = Params::init(&spec, 0)?;
        for &batch_size in &batches {
            let throughput = |device: &TrainDevice| -> anyhow::Result<f64> {
                let cfg = TrainConfig {
                    epochs: 1,
                    batch_size,
                    ..TrainConfig::default()
                };
                // Warm-up: allocations, and on wgpu the shader compiles.
                train_local(device, &init, &train, &cfg, &mut |_| {})?;
                let timed = TrainConfig { epochs, ..cfg };
                let start = Instant::now();
                let update = train_local(device, &init, &train, &timed, &mut |_| {})?;
                Ok((update.samples as usize * epochs) as f64 / start.elapsed().as_secs_f64())
            };
            let on_cpu = throughput(&cpu)?;
            let on_gpu = gpu.as_ref().map(throughput).transpose()?;
            let fmt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}"));
            println!(
                "| {name} | {} | {} | {batch_size} | {on_cpu:.0} | {} | {} |",
                spec.describe(),
                init.len(),
                fmt(on_gpu),
                on_gpu.map_or("–".to_string(), |g| format!("{:.2}", g / on_cpu)),
            );
        }
    }
    Ok(())
}
