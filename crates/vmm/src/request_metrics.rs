//! Counting served API requests: `api_server` for all of them, and
//! Firecracker's `get_api_requests`, `put_api_requests` and
//! `patch_api_requests` by resource, where Firecracker has a counter for
//! it (a resource it does not count, such as `/balloon`, counts only in
//! `api_server`).

use metrics::{
    Counter, GET_API_REQUESTS as GET, PATCH_API_REQUESTS as PATCH, PUT_API_REQUESTS as PUT,
};

use crate::request::VmmAction;

/// The counters one request bumps once answered: its resource's count,
/// and its fails when refused (GETs have none).
#[derive(Clone, Copy, Default)]
pub(crate) struct RequestCounters {
    count: Option<&'static Counter>,
    fails: Option<&'static Counter>,
}

impl RequestCounters {
    /// The counters of `action`, taken before it is served.
    pub(crate) fn of(action: &VmmAction) -> RequestCounters {
        use VmmAction::*;
        let (count, fails) = match action {
            GetState => (&GET.instance_info_count, None),
            GetMachineConfig => (&GET.machine_cfg_count, None),
            Start | SendCtrlAltDel | FlushMetrics => (&PUT.actions_count, Some(&PUT.actions_fails)),
            PutBootSource(_) => (&PUT.boot_source_count, Some(&PUT.boot_source_fails)),
            PutDrive(_) => (&PUT.drive_count, Some(&PUT.drive_fails)),
            PutLogger(_) => (&PUT.logger_count, Some(&PUT.logger_fails)),
            PutMachineConfig(_) => (&PUT.machine_cfg_count, Some(&PUT.machine_cfg_fails)),
            PutMetrics(_) => (&PUT.metrics_count, Some(&PUT.metrics_fails)),
            PutNetworkInterface(_) => (&PUT.network_count, Some(&PUT.network_fails)),
            PutVsock(_) => (&PUT.vsock_count, Some(&PUT.vsock_fails)),
            PutSerial(_) => (&PUT.serial_count, Some(&PUT.serial_fails)),
            PatchDrive(_) => (&PATCH.drive_count, Some(&PATCH.drive_fails)),
            PatchNetworkInterface(_) => (&PATCH.network_count, Some(&PATCH.network_fails)),
            PatchMachineConfig(_) => (&PATCH.machine_cfg_count, Some(&PATCH.machine_cfg_fails)),
            GetVmConfig | GetBalloon | GetBalloonStats | PutEntropy(_) | PutBalloon(_)
            | PatchBalloon(_) | PatchBalloonStats(_) | Pause | Resume | CreateSnapshot(_)
            | LoadSnapshot(_) => return RequestCounters::default(),
        };
        RequestCounters {
            count: Some(count),
            fails,
        }
    }

    /// Counts the request answered with `answer`.
    pub(crate) fn count<T, E>(self, answer: &Result<T, E>) {
        metrics::API_SERVER.requests.inc();
        if let Some(count) = self.count {
            count.inc();
        }
        if answer.is_err() {
            metrics::API_SERVER.request_fails.inc();
            if let Some(fails) = self.fails {
                fails.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::BootSource;

    fn is(counter: Option<&'static Counter>, expected: &'static Counter) -> bool {
        counter.is_some_and(|c| std::ptr::eq(c, expected))
    }

    #[test]
    fn each_request_counts_under_firecrackers_name_for_it() {
        // The counters are process-wide and a metrics line in another test
        // may take them at any time: only which counter is checked here.
        let put = RequestCounters::of(&VmmAction::PutBootSource(BootSource::default()));
        assert!(is(put.count, &PUT.boot_source_count));
        assert!(is(put.fails, &PUT.boot_source_fails));
        let flush = RequestCounters::of(&VmmAction::FlushMetrics);
        assert!(is(flush.count, &PUT.actions_count));
        let get = RequestCounters::of(&VmmAction::GetState);
        assert!(is(get.count, &GET.instance_info_count));
        assert!(get.fails.is_none(), "Firecracker counts no failed GET");
        let pause = RequestCounters::of(&VmmAction::Pause);
        assert!(pause.count.is_none() && pause.fails.is_none());
    }
}
