//! The virtio-net device: features, configuration space, and a worker
//! per activation that serves both queues and the TAP.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use super::config::{random_mac, NetConfig};
use super::handle::{Active, NetHandle, NetUpdate};
use super::queues::{NetQueues, MODERATION, TAP_SOURCE};
use super::tap::Tap;
use super::{features as net, RX_QUEUE, TX_QUEUE};
use crate::device::{read_config_bytes, ActivateContext, ActivateError, VirtioDevice};
use crate::moderation::Moderation;
use crate::update::Mailbox;
use crate::{
    device_type, features, DeviceState, DeviceStateError, SaveError, SaveReport, SavedDevice, Wake,
    Worker,
};

const QUEUE_SIZE: u16 = 256;
/// `virtio_net_config.status`: the link is up.
const LINK_UP: u16 = 1;

/// A guest NIC backed by a host TAP.
pub struct Net {
    tap: Arc<Tap>,
    mac: [u8; 6],
    /// The rate limits, which the VMM changes through the handle.
    handle: NetHandle,
    /// Interrupt moderation on (`moderation=off` turns it off).
    moderation: bool,
    avail_features: u64,
    acked_features: u64,
    worker: Option<Worker>,
    /// Where the worker reports its queues for a snapshot.
    report: SaveReport,
    metrics: Arc<metrics::NetMetrics>,
}

/// What a NIC keeps beyond its queues and the features its driver
/// accepted (from which the TAP's offloads follow): the MAC its driver
/// read, which a NIC configured without one drew at random.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetState {
    pub mac: [u8; 6],
}

impl Net {
    /// A NIC on `tap` (opened by the caller, so it outlives guest reboots)
    /// as `config` describes.
    pub fn new(config: &NetConfig, tap: Arc<Tap>) -> Net {
        let offloads = tap.supported_offloads();
        let mut avail = features::VERSION_1
            | features::RING_EVENT_IDX
            | features::RING_INDIRECT_DESC
            | net::MAC
            | net::STATUS
            | net::MRG_RXBUF
            // A TAP with virtio-net headers takes partial checksums and
            // segmentation frames from the guest.
            | net::CSUM
            | net::HOST_TSO4
            | net::HOST_TSO6;
        if offloads & libc::TUN_F_CSUM != 0 {
            avail |= net::GUEST_CSUM;
            if offloads & libc::TUN_F_TSO4 != 0 {
                avail |= net::GUEST_TSO4;
            }
            if offloads & libc::TUN_F_TSO6 != 0 {
                avail |= net::GUEST_TSO6;
            }
        }
        Net {
            tap,
            mac: config.mac.unwrap_or_else(random_mac),
            handle: NetHandle::new(config.rx.clone(), config.tx.clone()),
            moderation: config.moderation,
            avail_features: avail,
            acked_features: 0,
            worker: None,
            report: SaveReport::default(),
            metrics: Arc::default(),
        }
    }

    /// Counts in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<metrics::NetMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The guest's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn config_space(&self) -> [u8; 8] {
        let mut config = [0u8; 8];
        config[..6].copy_from_slice(&self.mac);
        config[6..].copy_from_slice(&LINK_UP.to_le_bytes());
        config
    }

    /// The handle that changes the rate limits at run time.
    pub fn handle(&self) -> NetHandle {
        self.handle.clone()
    }
}

/// The TAP offloads (`TUN_F_*`) that match what the guest can receive.
pub fn tun_offloads(acked: u64) -> u32 {
    if acked & net::GUEST_CSUM == 0 {
        return 0;
    }
    let mut flags = libc::TUN_F_CSUM;
    if acked & net::GUEST_TSO4 != 0 {
        flags |= libc::TUN_F_TSO4;
    }
    if acked & net::GUEST_TSO6 != 0 {
        flags |= libc::TUN_F_TSO6;
    }
    flags
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        device_type::NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        self.avail_features
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.avail_features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config_space(), offset, data);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        // The MAC is writable only in the legacy interface.
        tracing::debug!(offset, "virtio-net: configuration space write ignored");
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let got = ctx.queues.len();
        let mut queues = ctx.queues.into_iter();
        let (Some(rx), Some(tx), None) = (queues.next(), queues.next(), queues.next()) else {
            return Err(ActivateError::QueueCount { expected: 2, got });
        };
        debug_assert_eq!((RX_QUEUE, TX_QUEUE), (0, 1));
        self.tap
            .set_offload(tun_offloads(self.acked_features))
            .map_err(|e| {
                ActivateError::Device(format!("TAP {}: cannot set offloads: {e}", self.tap.name()))
            })?;
        // Held until the worker is known: an update waits for it.
        let mut stored = self.handle.lock();
        let limiters = (stored.rx.limiter())
            .and_then(|rx| Ok((rx, stored.tx.limiter()?)))
            .map_err(ActivateError::Worker)?;
        let handler = NetQueues::new(
            self.tap.clone(),
            ctx.mem,
            ctx.interrupt,
            rx,
            tx,
            self.acked_features,
            limiters,
        )
        .with_metrics(self.metrics.clone());
        let kick = ctx.queue_evts[TX_QUEUE]
            .try_clone()
            .map_err(ActivateError::Worker)?;
        let mut handler = handler.with_tx_kick(kick);
        if self.moderation {
            let moderation = || Moderation::new(MODERATION).map_err(ActivateError::Worker);
            handler.set_moderation(moderation()?, moderation()?);
        }
        let (rx_timer, tx_timer) = handler.timer_fds();
        let mut sources = vec![self.tap.as_raw_fd(), rx_timer, tx_timer];
        if let Some((rx_mod, tx_mod)) = handler.moderation_fds() {
            sources.extend([rx_mod, tx_mod]);
        }
        let mut watching_tap = true;
        let report = self.report.clone();
        let mailbox = Arc::new(Mailbox::<NetUpdate>::new());
        let updates = mailbox.clone();
        let worker = Worker::spawn(
            format!("net-{}", self.tap.name()),
            ctx.queue_evts,
            sources,
            move |wake, sources| {
                match wake {
                    Wake::Update => {
                        if let Some(taken) = updates.take() {
                            handler.update_limits(&taken.update.rx, &taken.update.tx);
                        }
                        return;
                    }
                    Wake::Save => {
                        report.put(SavedDevice::queues(handler.save()));
                        return;
                    }
                    Wake::Queue(_) | Wake::Source(_) => {}
                }
                handler.handle(wake);
                let wanted = handler.wants_io();
                if wanted != watching_tap {
                    if wanted {
                        sources.resume(TAP_SOURCE);
                    } else {
                        sources.pause(TAP_SOURCE);
                    }
                    watching_tap = wanted;
                }
            },
        )
        .map_err(ActivateError::Worker)?;
        stored.active = Some(Active {
            mailbox,
            doorbell: worker.doorbell(),
        });
        drop(stored);
        tracing::debug!(
            tap = self.tap.name(),
            features = format_args!("{:#x}", self.acked_features),
            "virtio-net activated"
        );
        self.worker = Some(worker);
        Ok(())
    }

    fn reset(&mut self) {
        // No update reaches the worker from now on.
        self.handle.lock().active = None;
        self.worker = None;
        self.acked_features = 0;
        if let Err(e) = self.tap.set_offload(0) {
            crate::log_limit::warn_limited!(
                "TAP {}: cannot turn offloads off: {e}",
                self.tap.name()
            );
        }
    }

    fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    fn save(&self) -> Result<SavedDevice, SaveError> {
        let mut saved = self
            .report
            .ask_if_active(self.worker.as_ref(), "virtio-net")?;
        saved.state = Some(DeviceState::Net(NetState { mac: self.mac }));
        Ok(saved)
    }

    fn restore_state(&mut self, state: Option<&DeviceState>) -> Result<(), DeviceStateError> {
        match state {
            Some(DeviceState::Net(net)) => {
                self.mac = net.mac;
                Ok(())
            }
            Some(other) => Err(DeviceStateError::OtherDevice {
                saved: other.device_name(),
                device: "virtio-net",
            }),
            None => Err(DeviceStateError::Missing("virtio-net")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::config::NetConfig;

    /// Runs `f` on a thread of its own in a new network namespace, so the
    /// TAPs it makes never appear on the machine.
    fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: unshare takes flags only; it moves this thread alone
            // into a new network namespace.
            let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(ret, 0, "unshare: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn features_and_config_space_follow_the_tap_and_options() {
        let (avail, config, name) = in_new_netns(|| {
            let tap = Arc::new(Tap::open("ptsm-test0").expect("open a TAP"));
            let config = NetConfig::parse("tap=ptsm-test0,mac=52:54:00:aa:bb:cc").unwrap();
            let net = Net::new(&config, tap.clone());
            let mut space = [0u8; 8];
            net.read_config(0, &mut space);
            (net.avail_features(), space, tap.name().to_owned())
        });
        assert_eq!(name, "ptsm-test0");
        assert_eq!(config, [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc, 1, 0]);
        for f in [
            net::MAC,
            net::STATUS,
            net::MRG_RXBUF,
            net::CSUM,
            net::HOST_TSO4,
            net::HOST_TSO6,
            // Linux TAPs take all three receive offloads.
            net::GUEST_CSUM,
            net::GUEST_TSO4,
            net::GUEST_TSO6,
            features::VERSION_1,
            features::RING_EVENT_IDX,
        ] {
            assert_ne!(avail & f, 0, "{f:#x}");
        }
    }

    #[test]
    fn tap_offloads_follow_what_the_guest_accepted() {
        assert_eq!(tun_offloads(0), 0);
        assert_eq!(tun_offloads(net::GUEST_TSO4), 0, "no TSO without checksums");
        assert_eq!(tun_offloads(net::GUEST_CSUM), libc::TUN_F_CSUM);
        assert_eq!(
            tun_offloads(net::GUEST_CSUM | net::GUEST_TSO4 | net::GUEST_TSO6),
            TUN_ALL
        );
    }

    const TUN_ALL: u32 = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

    #[test]
    fn unacked_features_are_ignored_and_reset_forgets() {
        in_new_netns(|| {
            let tap = Arc::new(Tap::open("ptsm-test1").expect("open a TAP"));
            assert_eq!(tap.supported_offloads(), TUN_ALL);
            let mut net = Net::new(&NetConfig::parse("tap=ptsm-test1").unwrap(), tap);
            assert_eq!(net.mac()[0] & 3, 2, "random, local, unicast");
            net.set_acked_features(u64::MAX);
            assert_eq!(net.acked_features, net.avail_features);
            net.reset();
            assert_eq!(net.acked_features, 0);
        });
    }

    #[test]
    fn the_handle_changes_limits_before_during_and_after_a_run() {
        use crate::rate_limiter::{LimiterUpdate, Limits, TokenBucketConfig};
        use vm_memory::GuestAddress;
        let bucket = |size| TokenBucketConfig {
            size,
            refill: std::time::Duration::from_secs(1),
            one_time_burst: 0,
        };
        let remove_ops = LimiterUpdate {
            bandwidth: None,
            ops: Some(None),
        };
        let (before, running, answered, after) = in_new_netns(move || {
            let tap = Arc::new(Tap::open("ptsm-test3").expect("open a TAP"));
            let config = NetConfig::parse("tap=ptsm-test3,rx_ops=10,tx_bandwidth=1000").unwrap();
            let mut net = Net::new(&config, tap);
            let handle = net.handle();
            // Before activation: kept for it.
            let update = NetUpdate {
                rx: LimiterUpdate {
                    bandwidth: Some(Some(bucket(500))),
                    ops: None,
                },
                tx: LimiterUpdate::default(),
            };
            handle.update(update).unwrap();
            let before = handle.limits();
            let mem = crate::GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
            let queue = |at| {
                virtio_queue::mock::MockSplitQueue::create(&mem, GuestAddress(at), 16)
                    .create_queue()
                    .unwrap()
            };
            let irq = vmm_sys_util::eventfd::EventFd::new(0).unwrap();
            net.activate(ActivateContext {
                mem: mem.clone(),
                interrupt: Arc::new(crate::IrqTrigger::new(irq)),
                queues: vec![queue(0x1000), queue(0x8000)],
                queue_evts: (0..2)
                    .map(|_| vmm_sys_util::eventfd::EventFd::new(0).unwrap())
                    .collect(),
            })
            .unwrap();
            let running = handle.lock().active.is_some();
            // While running: the worker takes it, paused or not.
            assert!(net
                .worker()
                .unwrap()
                .pause(std::time::Duration::from_secs(5)));
            let update = NetUpdate {
                rx: remove_ops.clone(),
                tx: remove_ops.clone(),
            };
            handle.update(update).unwrap();
            let answered = handle.limits();
            net.worker().unwrap().resume();
            net.reset();
            let update = NetUpdate {
                rx: LimiterUpdate::default(),
                tx: LimiterUpdate {
                    bandwidth: Some(None),
                    ops: Some(Some(bucket(3))),
                },
            };
            handle.update(update).unwrap();
            (before, running, answered, handle.limits())
        });
        assert_eq!(
            before,
            (
                Limits {
                    bandwidth: Some(bucket(500)),
                    ops: Some(bucket(10)),
                },
                Limits {
                    bandwidth: Some(bucket(1000)),
                    ops: None,
                }
            )
        );
        assert!(running);
        assert_eq!(answered.0.ops, None);
        assert_eq!(answered.0.bandwidth, Some(bucket(500)), "left alone");
        assert_eq!(
            after.1,
            Limits {
                bandwidth: None,
                ops: Some(bucket(3))
            }
        );
    }

    #[test]
    fn a_second_open_of_a_busy_tap_fails_cleanly() {
        let err = in_new_netns(|| {
            let _first = Tap::open("ptsm-test2").expect("open a TAP");
            Tap::open("ptsm-test2").map(|_| ()).unwrap_err().to_string()
        });
        assert!(err.contains("ptsm-test2"), "{err}");
    }
}
