//! Every group Pointsman writes, with only the counters it really counts.
//! Names follow Firecracker's where the meaning is the same.

use crate::group::group;

group! {
    /// One virtio-blk disk (`block_<drive id>`; `block` sums them).
    pub struct BlockMetrics {
        /// Read requests served, and the bytes they read.
        read_count,
        read_bytes,
        /// Write requests served, and the bytes they wrote.
        write_count,
        write_bytes,
        /// Flush requests served.
        flush_count,
        /// Requests refused as malformed or of an unknown type.
        invalid_reqs_count,
        /// Requests whose system call on the image failed.
        execute_fails,
        /// Guest kicks of the request queue.
        queue_event_count,
        /// Times the rate limiter held a request back.
        rate_limiter_throttled_events,
        /// Wakes of the rate limiter's timer.
        rate_limiter_event_count,
        /// `PATCH /drives/{id}` while the guest runs, and those refused.
        update_count,
        update_fails,
    }
}

group! {
    /// One virtio-net NIC (`net_<iface id>`; `net` sums them).
    pub struct NetMetrics {
        /// Frames read from the TAP.
        rx_count,
        /// Frames given to the guest, and their bytes (virtio-net header
        /// included).
        rx_packets_count,
        rx_bytes_count,
        /// Frames from the TAP dropped: too large for the guest's buffers,
        /// a malformed buffer, or a runt.
        rx_fails,
        /// Reads of the TAP that failed.
        tap_read_fails,
        /// Wakes by the TAP and kicks of the receive queue.
        rx_tap_event_count,
        rx_queue_event_count,
        /// Times a frame waited because the guest had no receive buffer.
        no_rx_avail_buffer,
        /// Times the receive rate limiter held a frame back, and wakes of
        /// its timer.
        rx_rate_limiter_throttled,
        rx_event_rate_limiter_count,
        /// Frames the guest sent that went out on the TAP, and their
        /// bytes (header included).
        tx_packets_count,
        tx_bytes_count,
        /// Transmit chains refused (malformed chain or header).
        tx_malformed_frames,
        /// Writes to the TAP that failed (the frame is lost).
        tap_write_fails,
        /// Kicks of the transmit queue.
        tx_queue_event_count,
        /// Times the transmit rate limiter held a frame back, and wakes of
        /// its timer.
        tx_rate_limiter_throttled,
        tx_rate_limiter_event_count,
    }
}

group! {
    /// The virtio-vsock device (`vsock`).
    pub struct VsockMetrics {
        /// Kicks of the receive and transmit queues.
        rx_queue_event_count,
        tx_queue_event_count,
        /// Packets given to the guest, and their payload bytes.
        rx_packets_count,
        rx_bytes_count,
        /// Packets the guest sent, and their payload bytes.
        tx_packets_count,
        tx_bytes_count,
        /// Connections set up (from the host or the guest).
        conns_added,
        /// Connections ended by the device with a reset (a host socket
        /// that failed or closed without a shutdown).
        conns_killed,
        /// Connections gone, whichever way they ended.
        conns_removed,
    }
}

group! {
    /// The virtio-balloon device (`balloon`).
    pub struct BalloonMetrics {
        /// Buffers of page numbers put in and taken out of the balloon.
        inflate_count,
        deflate_count,
        /// Statistics buffers the guest filled.
        stats_updates_count,
        /// Free page reports, and the bytes given back to the host.
        free_page_report_count,
        free_page_report_freed,
    }
}

group! {
    /// The virtio-rng device (`entropy`).
    pub struct EntropyMetrics {
        /// Requests served, and the random bytes given.
        entropy_event_count,
        entropy_bytes,
        /// Times the host's `getrandom` failed.
        host_rng_fails,
    }
}

group! {
    /// The 16550 UART on COM1 (`uart`).
    pub struct UartMetrics {
        /// Bytes the guest read from the receive buffer.
        read_count,
        /// Bytes the guest sent out.
        write_count,
        /// Guest reads and writes of the wrong width.
        missed_read_count,
        /// Guest writes of the wrong width, and bytes the output lost.
        missed_write_count,
        /// Register writes that failed (an interrupt or the output).
        error_count,
        /// Output bytes the `PUT /serial` rate limiter dropped.
        rate_limiter_dropped_bytes,
    }
}

group! {
    /// vCPU exits the VMM handled, by kind (`vcpu`).
    pub struct VcpuMetrics {
        exit_io_in,
        exit_io_out,
        exit_mmio_read,
        exit_mmio_write,
        /// Exits that ended the run with an error.
        failures,
    }
}

group! {
    /// API requests the VMM served, and those it refused (`api_server`).
    pub struct ApiServerMetrics {
        requests,
        request_fails,
    }
}

group! {
    /// Pauses and resumes carried out (`vmm`).
    pub struct VmmMetrics {
        pauses,
        resumes,
    }
}

group! {
    /// GET requests served, by resource (`get_api_requests`).
    pub struct GetApiRequestsMetrics {
        /// `GET /`.
        instance_info_count,
        /// `GET /machine-config`.
        machine_cfg_count,
    }
}

group! {
    /// PUT requests served, and those refused, by resource
    /// (`put_api_requests`).
    pub struct PutApiRequestsMetrics {
        /// `PUT /actions` (InstanceStart, SendCtrlAltDel, FlushMetrics).
        actions_count,
        actions_fails,
        boot_source_count,
        boot_source_fails,
        drive_count,
        drive_fails,
        logger_count,
        logger_fails,
        machine_cfg_count,
        machine_cfg_fails,
        metrics_count,
        metrics_fails,
        network_count,
        network_fails,
        vsock_count,
        vsock_fails,
        serial_count,
        serial_fails,
    }
}

group! {
    /// PATCH requests served, and those refused, by resource
    /// (`patch_api_requests`).
    pub struct PatchApiRequestsMetrics {
        drive_count,
        drive_fails,
        network_count,
        network_fails,
        machine_cfg_count,
        machine_cfg_fails,
    }
}
