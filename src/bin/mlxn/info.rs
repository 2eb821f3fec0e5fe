use mlx_native::{kernels, MlxDevice, Result};

pub fn run(json: bool) -> Result<()> {
    let cpu = MlxDevice::cpu();
    let gpus: Vec<MlxDevice> = (0..MlxDevice::cuda_device_count())
        .filter_map(|i| MlxDevice::cuda(i).ok())
        .collect();
    let nvrtc = if gpus.is_empty() {
        None
    } else {
        Some(kernels::nvrtc_info().map_err(|e| e.to_string()))
    };
    if json {
        let v = serde_json::json!({
            "cpu": cpu.cpu_properties(),
            "cuda": gpus.iter().map(|g| g.cuda_properties()).collect::<Vec<_>>(),
            "nvrtc": nvrtc.as_ref().map(|n| match n { Ok(i) => serde_json::json!(i), Err(e) => serde_json::json!({"error": e}) }),
            "default": format!("{:?}", MlxDevice::new()?),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    if let Some(p) = cpu.cpu_properties() {
        println!(
            "cpu      {} — {} threads, {:.1} GiB",
            p.name,
            p.threads,
            p.total_memory as f64 / (1u64 << 30) as f64
        );
    }
    if gpus.is_empty() {
        println!("cuda     no CUDA GPU found (the CPU backend is used)");
    }
    for g in &gpus {
        if let Some(p) = g.cuda_properties() {
            println!(
                "cuda:{}   {} — sm_{}{}, {} SMs, {:.1} GiB, L2 {} MiB, smem/block opt-in {} KiB, driver {}.{}",
                p.ordinal,
                p.name,
                p.compute_capability.0,
                p.compute_capability.1,
                p.sm_count,
                p.total_memory as f64 / (1u64 << 30) as f64,
                p.l2_cache_bytes >> 20,
                p.max_shared_memory_per_block_optin >> 10,
                p.driver_version / 1000,
                (p.driver_version % 1000) / 10
            );
        }
    }
    match nvrtc {
        Some(Ok(n)) => println!("nvrtc    {}.{} at {}", n.version.0, n.version.1, n.path),
        Some(Err(e)) => println!("nvrtc    not usable: {e}"),
        None => {}
    }
    println!("default  {:?}", MlxDevice::new()?);
    Ok(())
}
