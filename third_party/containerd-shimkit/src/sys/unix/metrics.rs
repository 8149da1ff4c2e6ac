use anyhow::Result;
use containerd_shim::cgroup::collect_metrics;
use containerd_shim::protos::cgroups::metrics::Metrics;
use containerd_shim::util::convert_to_any;
use protobuf::well_known_types::any::Any;

#[cfg_attr(feature = "tracing", tracing::instrument(level = "Debug"))]
pub fn get_metrics(pid: u32) -> Result<Any> {
    let mut metrics = collect_metrics(pid)?;
    correct_cpu_usage(pid, &mut metrics);

    let metrics = convert_to_any(Box::new(metrics))?;
    Ok(metrics)
}

// wasmhttp patch: `collect_metrics` reads only cgroup v2's `cpu.stat` keys and
// copies their microseconds into fields that containerd reads as nanoseconds.
// On cgroup v1 CPU usage is therefore always 0 and on v2 it is 1000x too small,
// so `kubectl top` and the HPA see no CPU. Fill the usage in nanoseconds from
// the right file for either version.
fn correct_cpu_usage(pid: u32, metrics: &mut Metrics) {
    let Some(usage) = cpu_usage(pid) else {
        return;
    };
    let cpu = metrics.cpu.mut_or_insert_default();
    let cpu_usage = cpu.usage.mut_or_insert_default();
    cpu_usage.set_total(usage.total_ns);
    cpu_usage.set_user(usage.user_ns);
    cpu_usage.set_kernel(usage.kernel_ns);
}

struct CpuUsage {
    total_ns: u64,
    user_ns: u64,
    kernel_ns: u64,
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn cpu_usage(pid: u32) -> Option<CpuUsage> {
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    // v1 lines read `N:cpu,cpuacct:/path`, the v2 line `0::/path`
    let mut unified = None;
    for line in membership.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "cpuacct") {
            return cpuacct_usage(&format!("{CGROUP_ROOT}/{controllers}/{path}"))
                .or_else(|| cpuacct_usage(&format!("{CGROUP_ROOT}/cpuacct/{path}")));
        }
        if controllers.is_empty() {
            unified = Some(path.to_string());
        }
    }
    let stat = std::fs::read_to_string(format!("{CGROUP_ROOT}/{}/cpu.stat", unified?)).ok()?;
    let value = |key: &str| -> Option<u64> {
        stat.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
    };
    Some(CpuUsage {
        total_ns: value("usage_usec")? * 1000,
        user_ns: value("user_usec").unwrap_or(0) * 1000,
        kernel_ns: value("system_usec").unwrap_or(0) * 1000,
    })
}

fn cpuacct_usage(dir: &str) -> Option<CpuUsage> {
    let total_ns = std::fs::read_to_string(format!("{dir}/cpuacct.usage"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // cpuacct.stat counts USER_HZ ticks, which Linux fixes at 100 per second
    let stat = std::fs::read_to_string(format!("{dir}/cpuacct.stat")).unwrap_or_default();
    let ticks = |key: &str| -> u64 {
        stat.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    };
    Some(CpuUsage {
        total_ns,
        user_ns: ticks("user") * 10_000_000,
        kernel_ns: ticks("system") * 10_000_000,
    })
}
