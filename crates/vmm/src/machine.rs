//! One boot of one guest: built top to bottom from the configuration,
//! run until something stops it, then torn down.

use std::fs::File;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use arch::layout::RSDP_START;
use arch::x86_64::regs::EntryMode;
use arch::x86_64::{acpi, memory::memory_map, mptable, paging, regs, reset_vector};
use boot::{BootInfo, KernelEntry, LoadedKernel};
use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use hypervisor::{Hypervisor, Vcpu, Vm};
use tracing::{debug, error, warn};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use crate::config::{KernelSource, VmConfig};
use crate::console::{ConsoleInput, InputSwitch};
use crate::controller::Controller;
use crate::device_manager::{create_devices, Devices};
use crate::device_updates::DeviceHandles;
use crate::exit::{ExitSignal, GuestExit};
use crate::generation_id;
use crate::lifecycle::VmState;
use crate::memory::{create_guest_memory, map_guest_memory, GuestMemoryMmap, GuestRam};
use crate::net::Taps;
use crate::request::{RequestSource, VmmAction};
use crate::request_metrics::RequestCounters;
use crate::run_control::RunControl;
use crate::signals;
use crate::snapshot::DevicesState;
use crate::vcpu::{self, VcpuSetup};
use crate::vcpu_gate::VcpuGate;
use crate::{Error, Result};

/// Where KVM's TSS and identity-map pages go: inside the 32-bit hole, clear
/// of the IOAPIC and LAPIC.
const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// Initrd limit when the kernel states none (ELF and PVH kernels).
const DEFAULT_INITRD_ADDR_MAX: u64 = u32::MAX as u64;

/// A built, not yet running, machine. Field order is drop order: devices
/// (and their clones of guest memory) and the VM go before the RAM.
pub(crate) struct Machine {
    pub(crate) exit: Arc<ExitSignal>,
    /// [`virtio::abandoned_workers`] when the machine was built.
    workers_abandoned_before: usize,
    pub(crate) vcpus: Vec<Vcpu>,
    pub(crate) devices: Devices,
    /// The MSRs a snapshot saves of each vCPU: all KVM lets the VMM read.
    pub(crate) msr_indices: Arc<[u32]>,
    /// Whether the virtio devices are on PCI.
    pub(crate) pci: bool,
    /// Whether KVM logs the guest's writes to RAM (Diff snapshots).
    pub(crate) track_dirty_pages: bool,
    pub(crate) vm: Arc<Vm>,
    pub(crate) ram: GuestRam,
}

/// A VM with its RAM mapped and its devices, before any vCPU.
pub(crate) struct Platform {
    pub vm: Arc<Vm>,
    pub exit: Arc<ExitSignal>,
    pub devices: Devices,
}

impl Platform {
    /// The VM over `ram`, with the in-kernel platform and the devices
    /// `config` asks for (going on from `restored`, a snapshot's).
    pub(crate) fn build(
        config: &VmConfig,
        hypervisor: &Hypervisor,
        taps: &Taps,
        ram: &GuestRam,
        restored: Option<&DevicesState>,
    ) -> Result<Platform> {
        let vm = Arc::new(hypervisor.create_vm()?);
        vm.create_x86_platform(KVM_TSS_ADDRESS)?;
        map_guest_memory(&vm, &ram.memory, config.track_dirty_pages)?;
        let exit = Arc::new(ExitSignal::new()?);
        let devices = create_devices(&vm, &ram.memory, config, &exit, taps, restored)?;
        Ok(Platform { vm, exit, devices })
    }
}

impl Machine {
    /// Memory, VM, devices, kernel, tables, vCPUs: in that order.
    pub(crate) fn build(
        config: &VmConfig,
        hypervisor: &Hypervisor,
        taps: &Taps,
    ) -> Result<Machine> {
        let ram = create_guest_memory(config.memory, config.huge_pages)?;
        let platform = Platform::build(config, hypervisor, taps, &ram, None)?;
        let memory = &ram.memory;
        let kernel = load_kernel(memory, &config.kernel)?;
        generation_id::write_fresh(memory)?;
        let entry = load_boot_files(memory, config, &kernel, &platform.devices.aml)?;

        let setup = VcpuSetup {
            supported_cpuid: hypervisor.supported_cpuid()?,
            supported_msrs: hypervisor.msr_index_list()?,
            cpus: config.cpus,
        };
        let mut vcpus = Vec::with_capacity(config.cpus as usize);
        for id in 0..config.cpus {
            let vcpu = platform.vm.create_vcpu(id)?;
            vcpu::configure(&vcpu, &setup, (id == 0).then_some(entry))?;
            vcpus.push(vcpu);
        }
        Machine::assemble(config, platform, vcpus, ram, hypervisor)
    }

    /// The machine made of its parts.
    pub(crate) fn assemble(
        config: &VmConfig,
        platform: Platform,
        vcpus: Vec<Vcpu>,
        ram: GuestRam,
        hypervisor: &Hypervisor,
    ) -> Result<Machine> {
        Ok(Machine {
            exit: platform.exit,
            workers_abandoned_before: virtio::abandoned_workers(),
            vcpus,
            devices: platform.devices,
            msr_indices: hypervisor.msr_index_list()?.into(),
            pci: config.pci,
            track_dirty_pages: config.track_dirty_pages,
            vm: platform.vm,
            ram,
        })
    }

    /// The disks' and NICs' run-time handles.
    pub(crate) fn device_handles(&self) -> DeviceHandles {
        self.devices.handles.clone()
    }

    /// Runs the guest until it powers off, resets or fails, serving
    /// `requests` (the API's) meanwhile; `paused`, it starts paused (a
    /// restored guest without `resume_vm`), its vCPUs parked before their
    /// first entry.
    pub(crate) fn run<'r>(
        mut self,
        mut requests: Option<&mut (dyn RequestSource + 'r)>,
        controller: &mut Controller,
        paused: bool,
    ) -> Result<GuestExit> {
        let mut events =
            EventManager::<Box<dyn MutEventSubscriber>>::new().map_err(|e| Error::Host {
                what: "create the event loop",
                source: std::io::Error::other(e.to_string()),
            })?;
        events.add_subscriber(Box::new(ExitWatcher(self.exit.clone())));
        events.add_subscriber(Box::new(StopSignalWatcher(self.exit.clone())));
        let input = Arc::new(InputSwitch::new()?);
        if self.devices.com1_reads_stdin {
            events.add_subscriber(Box::new(ConsoleInput::new(
                self.devices.com1.clone(),
                clone_eventfd(
                    &self.devices.com1_input_drained,
                    "clone the COM1 input eventfd",
                )?,
                input.clone(),
            )));
        }
        if let Some(source) = requests.as_deref() {
            events.add_subscriber(Box::new(RequestWatcher(clone_eventfd(
                source.eventfd(),
                "clone the request eventfd",
            )?)));
        }

        if !paused {
            // Restored devices start parked, as a restored machine does.
            for transport in &self.devices.virtio {
                devices::bus::lock(transport).resume();
            }
        }
        let gate = Arc::new(VcpuGate::with_closed(paused));
        input.set(!paused);
        let mut threads = Vec::with_capacity(self.vcpus.len());
        for vcpu in self.vcpus.drain(..) {
            let buses = self.devices.buses.clone();
            match vcpu::spawn(vcpu, buses, self.exit.clone(), gate.clone()) {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    self.exit.stop(Err(e));
                    break;
                }
            }
        }
        let mut control = RunControl {
            threads,
            gate,
            input,
            state: if paused {
                VmState::Paused
            } else {
                VmState::Running
            },
        };

        while !self.exit.is_stopping() {
            // Woken for metrics too, when they are due.
            let ran = match controller.metrics().due_in() {
                Some(due) => {
                    let ms = i32::try_from(due.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
                    events.run_with_timeout(ms)
                }
                None => events.run(),
            };
            if let Err(e) = ran {
                self.exit.stop(Err(Error::Host {
                    what: "wait for events",
                    source: std::io::Error::other(e.to_string()),
                }));
            }
            controller.metrics().flush_if_due();
            if let Some(source) = requests.as_deref_mut() {
                while let Some(request) = source.next_request() {
                    let counters = RequestCounters::of(&request.action);
                    let answer = match request.action {
                        VmmAction::CreateSnapshot(params) => {
                            self.serve_create_snapshot(&control, controller, params)
                        }
                        action => controller.serve_running(action, &mut control, &self.devices),
                    };
                    counters.count(&answer);
                    (request.reply)(answer);
                }
            }
        }
        let vcpus_stopped = vcpu::stop_all(control.threads, &control.gate);
        let outcome = self.exit.take();
        debug!(?outcome, "machine stopped");
        self.tear_down(vcpus_stopped);
        outcome
    }

    /// Drops the devices (stopping their workers, each within
    /// [`virtio::STOP_DEADLINE`]), then the VM and the RAM. A vCPU or a
    /// worker left running past its deadline may still touch guest
    /// memory: then the RAM stays mapped until the process ends.
    fn tear_down(self, vcpus_stopped: bool) {
        let Machine {
            workers_abandoned_before,
            devices,
            vm,
            ram,
            ..
        } = self;
        drop(devices);
        drop(vm);
        let workers_stopped = virtio::abandoned_workers() == workers_abandoned_before;
        if !(vcpus_stopped && workers_stopped) {
            error!("threads of the stopped machine are still running: its guest memory stays mapped until the process ends");
            std::mem::forget(ram);
        }
    }
}

/// Wakes the event loop when the machine must stop.
struct ExitWatcher(Arc<ExitSignal>);

impl MutEventSubscriber for ExitWatcher {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(self.0.eventfd(), EventSet::IN)) {
            self.0.stop(Err(Error::Host {
                what: "watch the exit eventfd",
                source: std::io::Error::other(e.to_string()),
            }));
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.0.eventfd().read();
    }
}

/// Wakes the event loop when requests wait; they are served after each
/// turn of the loop, where the machine can be reached.
struct RequestWatcher(EventFd);

impl MutEventSubscriber for RequestWatcher {
    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.0, EventSet::IN)) {
            warn!("cannot watch for API requests: {e}");
        }
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        // Cleared before the requests are taken: one that comes meanwhile
        // wakes the loop again.
        let _ = self.0.read();
    }
}

pub(crate) fn clone_eventfd(evt: &EventFd, what: &'static str) -> Result<EventFd> {
    evt.try_clone()
        .map_err(|source| Error::Host { what, source })
}

/// Stops the machine when SIGTERM or SIGINT came, as a power-off would.
struct StopSignalWatcher(Arc<ExitSignal>);

impl StopSignalWatcher {
    fn check(&self) {
        if let Some(signal) = signals::received() {
            self.0.stop(Err(Error::Stopped { signal }));
        }
    }
}

impl MutEventSubscriber for StopSignalWatcher {
    fn init(&mut self, ops: &mut EventOps) {
        let added = match signals::wake_fd() {
            Some(fd) => ops.add(Events::new_raw(fd, EventSet::IN)),
            None => Ok(()),
        };
        if let Err(e) = added {
            self.0.stop(Err(Error::Host {
                what: "watch the stop-signal eventfd",
                source: std::io::Error::other(e.to_string()),
            }));
        }
        // A signal that came while the machine was built.
        self.check();
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        signals::clear_wake();
        self.check();
    }
}

/// Opens a kernel or initrd, which must be a regular file: a directory or
/// a device would pass `open` and then fail in confusing ways.
fn open_boot_file(what: &'static str, path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|source| Error::OpenFile {
        what,
        path: path.to_owned(),
        source,
    })?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        _ => Err(Error::NotAFile {
            what,
            path: path.to_owned(),
        }),
    }
}

fn load_kernel(memory: &GuestMemoryMmap, source: &KernelSource) -> Result<LoadedKernel> {
    Ok(match source {
        KernelSource::File(path) => {
            boot::load_kernel(memory, &mut open_boot_file("kernel", path)?)?
        }
        KernelSource::Embedded(bytes) => boot::load_kernel(memory, &mut Cursor::new(*bytes))?,
    })
}

/// Loads the initrd and command line, writes the boot tables and the boot
/// information, and returns how the boot vCPU enters the kernel.
fn load_boot_files(
    memory: &GuestMemoryMmap,
    config: &VmConfig,
    kernel: &LoadedKernel,
    device_aml: &[u8],
) -> Result<EntryMode> {
    let initrd = match &config.initrd {
        Some(path) => {
            let mut file = open_boot_file("initrd", path)?;
            let addr_max = kernel
                .setup_header
                .map_or(DEFAULT_INITRD_ADDR_MAX, |h| u64::from(h.initrd_addr_max));
            Some(boot::load_initrd(memory, &mut file, kernel.end, addr_max)?)
        }
        None => None,
    };
    let cmdline = boot::write_cmdline(memory, &config.cmdline)?;

    regs::write_descriptor_tables(memory)?;
    reset_vector::write_reset_vector(memory)?;
    mptable::write_mptable(memory, config.cpus)?;
    let rsdp = acpi::write_acpi_tables(memory, config.cpus, device_aml)?;
    debug_assert_eq!(rsdp, RSDP_START);

    let map = memory_map(config.memory);
    let info = BootInfo {
        kernel,
        cmdline,
        initrd,
        rsdp,
        memory_map: &map,
    };
    let boot_info = boot::write_boot_info(memory, &info)?;
    Ok(match kernel.entry {
        KernelEntry::Linux64(entry) => EntryMode::Linux64 {
            entry,
            boot_params: boot_info,
            cr3: paging::write_identity_map(memory)?,
        },
        KernelEntry::Pvh(entry) => EntryMode::Pvh {
            entry,
            start_info: boot_info,
        },
    })
}
