//! What the VMM and its devices count, in Firecracker's metrics groups.
//!
//! Each device gets its group (an `Arc`) when it is made and bumps its
//! counters with relaxed atomic adds where the work is done; the VMM
//! keeps them in a [`Registry`] by device id and writes them, each
//! metrics line taking (resetting) every counter, so a line holds what
//! happened since the previous one. The VMM's own groups (`vcpu`,
//! `api_server`, `*_api_requests`, `vmm`, `latencies_us`) are
//! process-wide statics: one guest per VMM process.

mod counter;
mod group;
mod groups;
mod registry;

use std::sync::LazyLock;

pub use counter::{Counter, Gauge};
pub use group::Group;
pub use groups::{
    ApiServerMetrics, BalloonMetrics, BlockMetrics, EntropyMetrics, GetApiRequestsMetrics,
    NetMetrics, PatchApiRequestsMetrics, PutApiRequestsMetrics, UartMetrics, VcpuMetrics,
    VmmMetrics, VsockMetrics,
};
pub use registry::{Registry, Taken};

/// How long the last pause and resume of the guest took, in
/// microseconds (`latencies_us`).
#[derive(Debug, Default)]
pub struct Latencies {
    pub pause_vm: Gauge,
    pub resume_vm: Gauge,
}

impl Latencies {
    pub const fn new() -> Self {
        Latencies {
            pause_vm: Gauge::new(),
            resume_vm: Gauge::new(),
        }
    }

    pub fn values(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("pause_vm", self.pause_vm.get()),
            ("resume_vm", self.resume_vm.get()),
        ]
    }
}

pub static VCPU: VcpuMetrics = VcpuMetrics::new();
pub static API_SERVER: ApiServerMetrics = ApiServerMetrics::new();
pub static GET_API_REQUESTS: GetApiRequestsMetrics = GetApiRequestsMetrics::new();
pub static PUT_API_REQUESTS: PutApiRequestsMetrics = PutApiRequestsMetrics::new();
pub static PATCH_API_REQUESTS: PatchApiRequestsMetrics = PatchApiRequestsMetrics::new();
pub static VMM: VmmMetrics = VmmMetrics::new();
pub static LATENCIES: Latencies = Latencies::new();

/// The devices of this process's guest.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);
    &REGISTRY
}
