//! The daemon's API from the client's side, for `pointsman vm`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::guest::GuestConfig;
use crate::http_client;
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
        let answer = http_client::request(&self.socket, method, path, body, REQUEST_TIMEOUT)?;
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

    pub fn set_paused(&self, name: &str, paused: bool) -> Result<(), ManagerError> {
        let state = if paused { "Paused" } else { "Resumed" };
        let body = json!({ "state": state }).to_string();
        self.call("PATCH", &Self::guest_path(name, "")?, Some(&body))
            .map(drop)
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

    pub fn remove(&self, name: &str) -> Result<(), ManagerError> {
        self.call("DELETE", &Self::guest_path(name, "")?, None)
            .map(drop)
    }
}
