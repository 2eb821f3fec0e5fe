//! `mlxn bench`: benchmarks reported beside the limits measured in the same
//! run. GPU times come from CUDA events around each repetition, after a
//! warm-up; the figure is the median. Buffers are far larger than the L2.

mod cublas;
mod data;
mod gdn;
mod gdn_layer;
mod gemm;
pub mod limits;
mod qmatmul;
mod runtime;

use std::time::Instant;

use clap::Args;
use mlx_native::{CommandEncoder, MlxDevice, Result};
use serde::Serialize;

#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmarks: all, or one or more (comma-separated, run in
    /// this order, in one process) of copy, launch, encode, registry,
    /// qmatmul, gemm, gdn.
    #[arg(default_value = "all")]
    pub which: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Smaller sizes and fewer repetitions, for a quick look.
    #[arg(long)]
    pub quick: bool,
}

/// One line of the report: a figure, and the limit it is compared with.
#[derive(Serialize)]
pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub limit_name: String,
    pub limit: Option<f64>,
    /// value / limit, or limit / value when `lower_is_better`.
    pub ratio: Option<f64>,
    pub lower_is_better: bool,
    pub note: String,
}

impl Row {
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Row {
        Row {
            name: name.into(),
            value,
            unit,
            limit_name: String::new(),
            limit: None,
            ratio: None,
            lower_is_better: false,
            note: String::new(),
        }
    }
    /// Compares with `limit`: ratio = value / limit (higher is better).
    pub fn against(mut self, limit_name: impl Into<String>, limit: f64) -> Row {
        self.limit_name = limit_name.into();
        self.limit = Some(limit);
        self.ratio = Some(if self.lower_is_better {
            limit / self.value
        } else {
            self.value / limit
        });
        self
    }
    pub fn lower_is_better(mut self) -> Row {
        self.lower_is_better = true;
        self
    }
    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = note.into();
        self
    }
}

pub fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Median GPU milliseconds of `f`, timed between two encoder timestamps,
/// after `warmup` untimed runs. `f` gets the repetition number so that it
/// can rotate its inputs.
pub fn time_ms(
    enc: &mut CommandEncoder,
    warmup: usize,
    reps: usize,
    mut f: impl FnMut(&mut CommandEncoder, usize) -> Result<()>,
) -> Result<f64> {
    for i in 0..warmup {
        f(enc, i)?;
    }
    enc.commit_and_wait()?;
    let mut times = Vec::with_capacity(reps);
    for i in 0..reps {
        let t0 = enc.timestamp()?;
        f(enc, i)?;
        let t1 = enc.timestamp()?;
        times.push(t0.elapsed_ms(&t1)?);
    }
    Ok(median(&mut times))
}

/// Median wall-clock milliseconds of `f`.
pub fn wall_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(&mut times))
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let device = MlxDevice::new()?;
    progress(&format!("device: {device:?}"));
    let mut rows = Vec::new();
    let known = [
        "copy", "launch", "encode", "registry", "qmatmul", "gemm", "gdn",
    ];
    let which: Vec<&str> = match args.which.as_str() {
        "all" => known.to_vec(),
        list => list.split(',').map(str::trim).collect(),
    };
    if let Some(unknown) = which.iter().find(|w| !known.contains(w)) {
        return Err(mlx_native::MlxError::InvalidArgument {
            op: "bench",
            msg: format!(
                "unknown benchmark '{unknown}'; all, or one or more of {}",
                known.join(", ")
            ),
        });
    }
    for family in which {
        match family {
            "copy" => rows.extend(runtime::copy_bandwidth(&device, args.quick)?),
            "launch" => rows.extend(runtime::launch_overhead(&device, args.quick)?),
            "encode" => rows.extend(runtime::encode_serial_vs_worker(&device, args.quick)?),
            "registry" if device.is_cuda() => rows.extend(runtime::registry_times(&device)?),
            "registry" => {}
            "qmatmul" => rows.extend(qmatmul::qmatmul(&device, args.quick)?),
            "gemm" => rows.extend(gemm::prefill_vs_cublas(&device, args.quick)?),
            "gdn" => {
                rows.extend(gdn_layer::rows(&device, args.quick)?);
                rows.extend(gdn::rows(&device, args.quick)?);
            }
            _ => {} // every name was checked above
        }
    }
    print(&device, &rows, args.json);
    Ok(())
}

fn print(device: &MlxDevice, rows: &[Row], json: bool) {
    if json {
        let v = serde_json::json!({ "device": format!("{device:?}"), "results": rows });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    println!("device: {device:?}");
    println!(
        "{:<44} {:>12} {:<6} {:<34} {:>12} {:>7}  note",
        "benchmark", "value", "unit", "limit (same run)", "limit", "ratio"
    );
    for r in rows {
        let limit = r.limit.map_or(String::from("-"), |l| format!("{l:.3}"));
        let ratio = r.ratio.map_or(String::from("-"), |x| format!("{x:.3}"));
        println!(
            "{:<44} {:>12.3} {:<6} {:<34} {:>12} {:>7}  {}",
            r.name, r.value, r.unit, r.limit_name, limit, ratio, r.note
        );
    }
}
