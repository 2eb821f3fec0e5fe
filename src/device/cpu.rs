//! The CPU side of a device: a description of the host.

/// Properties of the host CPU device.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CpuProperties {
    pub name: String,
    pub total_memory: usize,
    pub threads: usize,
}

impl CpuProperties {
    pub(crate) fn read() -> CpuProperties {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let name = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let total_memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .map_or(0, |kb| kb * 1024);
        CpuProperties {
            name,
            total_memory,
            threads: rayon::current_num_threads(),
        }
    }
}
