//! The devices' metrics by id, from which a metrics line is written.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::group::Group;
use crate::groups::{
    BalloonMetrics, BlockMetrics, EntropyMetrics, NetMetrics, UartMetrics, VsockMetrics,
};

/// A group's name and its counts since the previous line.
pub type Taken = (String, Vec<(&'static str, u64)>);

/// Each device's metrics, by the id the API knows it by. A device gets
/// its metrics from here when the machine is built; the same id gets the
/// same metrics again when the guest reboots in place, so no count is
/// lost between two lines.
#[derive(Debug, Default)]
pub struct Registry {
    block: Mutex<BTreeMap<String, Arc<BlockMetrics>>>,
    net: Mutex<BTreeMap<String, Arc<NetMetrics>>>,
    vsock: Arc<VsockMetrics>,
    balloon: Arc<BalloonMetrics>,
    entropy: Arc<EntropyMetrics>,
    uart: Arc<UartMetrics>,
}

fn get_or_add<M: Default>(map: &Mutex<BTreeMap<String, Arc<M>>>, id: &str) -> Arc<M> {
    // Nothing under the lock can panic halfway through.
    let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
    map.entry(id.to_owned()).or_default().clone()
}

/// `<kind>_<id>` for each device, then `<kind>`, the sum of them all
/// (zeros without a device), as Firecracker writes them.
fn take_per_device<M: Group + Default>(
    kind: &str,
    map: &Mutex<BTreeMap<String, Arc<M>>>,
    into: &mut Vec<Taken>,
) {
    let map = map.lock().unwrap_or_else(PoisonError::into_inner);
    let mut sum = M::default().take();
    for (id, metrics) in map.iter() {
        let counts = metrics.take();
        for ((_, total), (_, count)) in sum.iter_mut().zip(&counts) {
            *total = total.saturating_add(*count);
        }
        into.push((format!("{kind}_{id}"), counts));
    }
    into.push((kind.to_owned(), sum));
}

impl Registry {
    /// The metrics of disk `id`.
    pub fn block(&self, id: &str) -> Arc<BlockMetrics> {
        get_or_add(&self.block, id)
    }

    /// The metrics of NIC `id`.
    pub fn net(&self, id: &str) -> Arc<NetMetrics> {
        get_or_add(&self.net, id)
    }

    pub fn vsock(&self) -> Arc<VsockMetrics> {
        self.vsock.clone()
    }

    pub fn balloon(&self) -> Arc<BalloonMetrics> {
        self.balloon.clone()
    }

    pub fn entropy(&self) -> Arc<EntropyMetrics> {
        self.entropy.clone()
    }

    pub fn uart(&self) -> Arc<UartMetrics> {
        self.uart.clone()
    }

    /// Every device group's counts since the last take, reset to 0.
    pub fn take(&self) -> Vec<Taken> {
        let mut groups = Vec::new();
        take_per_device("block", &self.block, &mut groups);
        take_per_device("net", &self.net, &mut groups);
        groups.push(("vsock".into(), self.vsock.take()));
        groups.push(("balloon".into(), self.balloon.take()));
        groups.push(("entropy".into(), self.entropy.take()));
        groups.push(("uart".into(), self.uart.take()));
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group<'a>(groups: &'a [Taken], name: &str) -> &'a [(&'static str, u64)] {
        &groups.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn count(groups: &[Taken], name: &str, field: &str) -> u64 {
        group(groups, name)
            .iter()
            .find(|(f, _)| *f == field)
            .unwrap()
            .1
    }

    #[test]
    fn per_device_groups_and_their_sum_count_since_the_last_take() {
        let registry = Registry::default();
        registry.block("root").read_count.add(2);
        registry.block("data").read_count.add(3);
        // The same id gets the same counters (a reboot in place).
        registry.block("root").read_bytes.add(512);
        registry.uart().write_count.add(5);

        let first = registry.take();
        assert_eq!(count(&first, "block_root", "read_count"), 2);
        assert_eq!(count(&first, "block_root", "read_bytes"), 512);
        assert_eq!(count(&first, "block_data", "read_count"), 3);
        assert_eq!(count(&first, "block", "read_count"), 5);
        assert_eq!(count(&first, "net", "rx_count"), 0);
        assert_eq!(count(&first, "uart", "write_count"), 5);

        let second = registry.take();
        assert_eq!(count(&second, "block", "read_count"), 0);
        assert_eq!(count(&second, "uart", "write_count"), 0);
    }
}
