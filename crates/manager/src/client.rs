//! The daemon's API from the client's side, for `pointsman vm`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::console::LogChunk;
use crate::guest::GuestConfig;
use crate::http_client::{self, Body};
use crate::name::check_name;
use crate::ManagerError;

/// Longest a request may take: a create waits for the VMM to start.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: PathBuf) -> Client {
        Client { socket }
    }

    /// One request; a 2xx answer's JSON body (`None` if empty), else the
    /// daemon's `fault_message` as [`ManagerError::Refused`].
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<Option<Value>, ManagerError> {
        let body = body.map(|b| Body {
            content_type: "application/json",
            bytes: b.as_bytes(),
        });
        self.call_with(method, path, body)
    }

    /// [`Client::call`] with a body of any type.
    fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Body>,
    ) -> Result<Option<Value>, ManagerError> {
        let answer = http_client::request_with(&self.socket, method, path, body, REQUEST_TIMEOUT)?;
        if !answer.is_success() {
            return Err(ManagerError::Refused {
                status: answer.status,
                message: answer.fault_message(),
            });
        }
        if answer.body.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&answer.body)
            .map(Some)
            .map_err(|e| ManagerError::BadResponse {
                path: self.socket.clone(),
                what: e.to_string(),
            })
    }

    /// `/vms/NAME` + `rest`, the name checked here: one with spaces or
    /// slashes would not even make a valid request line.
    fn guest_path(name: &str, rest: &str) -> Result<String, ManagerError> {
        check_name(name)?;
        Ok(format!("/vms/{name}{rest}"))
    }

    fn value(&self, method: &str, path: &str, body: Option<&str>) -> Result<Value, ManagerError> {
        Ok(self.call(method, path, body)?.unwrap_or(Value::Null))
    }

    fn value_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Body>,
    ) -> Result<Value, ManagerError> {
        Ok(self.call_with(method, path, body)?.unwrap_or(Value::Null))
    }

    pub fn create(&self, name: &str, config: &GuestConfig) -> Result<Value, ManagerError> {
        let body = json!(config).to_string();
        self.value("PUT", &Self::guest_path(name, "")?, Some(&body))
    }

    pub fn list(&self) -> Result<Value, ManagerError> {
        self.value("GET", "/vms", None)
    }

    pub fn show(&self, name: &str) -> Result<Value, ManagerError> {
        self.value("GET", &Self::guest_path(name, "")?, None)
    }

    pub fn logs(&self, name: &str) -> Result<String, ManagerError> {
        let value = self.value("GET", &Self::guest_path(name, "/logs")?, None)?;
        Ok(value["log"].as_str().unwrap_or_default().to_owned())
    }

    /// The console log from `offset` of `generation` (the one read last;
    /// `None` at first), see [`LogChunk`].
    pub fn log_from(
        &self,
        name: &str,
        offset: u64,
        generation: Option<u64>,
    ) -> Result<LogChunk, ManagerError> {
        let query = match generation {
            Some(g) => format!("/logs?offset={offset}&generation={g}"),
            None => format!("/logs?offset={offset}"),
        };
        let path = Self::guest_path(name, &query)?;
        let value = self.value("GET", &path, None)?;
        serde_json::from_value(value).map_err(|e| ManagerError::BadResponse {
            path: self.socket.clone(),
            what: e.to_string(),
        })
    }

    /// Sends `bytes` to the guest's serial port; how many it took (fewer
    /// than all when its input is nearly full: send the rest again).
    pub fn send_console(&self, name: &str, bytes: &[u8]) -> Result<usize, ManagerError> {
        let body = Body {
            content_type: "application/octet-stream",
            bytes,
        };
        let value = self.value_with("PUT", &Self::guest_path(name, "/console")?, Some(body))?;
        let written = value["written"].as_u64().unwrap_or(0);
        Ok(usize::try_from(written).unwrap_or(0).min(bytes.len()))
    }

    pub fn set_paused(&self, name: &str, paused: bool) -> Result<(), ManagerError> {
        let state = if paused { "Paused" } else { "Resumed" };
        let body = json!({ "state": state }).to_string();
        self.call("PATCH", &Self::guest_path(name, "")?, Some(&body))
            .map(drop)
    }

    /// `vm set`: new limits (a [`crate::limits_update::LimitsChange`]);
    /// the guest as it is then.
    pub fn set_limits(
        &self,
        name: &str,
        change: &crate::limits_update::LimitsChange,
    ) -> Result<Value, ManagerError> {
        let body = json!(change).to_string();
        self.value("PATCH", &Self::guest_path(name, "")?, Some(&body))
    }

    /// Asks for a stop and returns at once (the daemon kills the guest
    /// after `grace`).
    pub fn ask_stop(&self, name: &str, grace: Duration) -> Result<(), ManagerError> {
        let body = json!({ "action_type": "Stop", "grace_seconds": grace.as_secs() }).to_string();
        self.call("PUT", &Self::guest_path(name, "/actions")?, Some(&body))
            .map(drop)
    }

    /// Every guest's share and use, with rates (`GET /stats`).
    pub fn stats(&self) -> Result<crate::report::StatsReport, ManagerError> {
        let value = self.value("GET", "/stats", None)?;
        serde_json::from_value(value).map_err(|e| ManagerError::BadResponse {
            path: self.socket.clone(),
            what: e.to_string(),
        })
    }

    /// Asks for a stop and waits until the guest has ended (the daemon
    /// kills it after `grace`).
    pub fn stop(&self, name: &str, grace: Duration) -> Result<Value, ManagerError> {
        self.ask_stop(name, grace)?;
        let until = Instant::now() + grace + Duration::from_secs(10);
        loop {
            let shown = self.show(name)?;
            if shown["state"] == "stopped" || Instant::now() > until {
                return Ok(shown);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn kill(&self, name: &str) -> Result<Value, ManagerError> {
        let body = json!({ "action_type": "Kill" }).to_string();
        self.call("PUT", &Self::guest_path(name, "/actions")?, Some(&body))?;
        self.show(name)
    }

    /// Snapshots guest `name` into `dir` (absolute).
    pub fn snapshot(&self, name: &str, dir: &std::path::Path) -> Result<Value, ManagerError> {
        let body = json!({ "dir": dir }).to_string();
        self.value("PUT", &Self::guest_path(name, "/snapshot")?, Some(&body))
    }

    /// Starts guest `name` restored from a snapshot.
    pub fn clone_guest(
        &self,
        name: &str,
        request: &crate::clone::CloneRequest,
    ) -> Result<Value, ManagerError> {
        let body = json!(request).to_string();
        self.value("PUT", &Self::guest_path(name, "/clone")?, Some(&body))
    }

    pub fn remove(&self, name: &str) -> Result<(), ManagerError> {
        self.call("DELETE", &Self::guest_path(name, "")?, None)
            .map(drop)
    }
}
